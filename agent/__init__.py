"""agent: a chat agent for business scenarios, built from scenario plugins.

Two pipelines share the packages below. Answering: text -> plugin -> models -> reply. Learning: the log
(store) -> learn -> models, with review choosing what people label. Lower layers never import higher ones.

errors.py, settings.py  what every layer shares: the error kinds, the home and its config
memory.py               the process's peak memory, and handing freed memory back
store.py                the SQLite log of every turn, feedback and what plugins store
text/                   decoding, redaction, spelling: before any model sees a message
models/                 encoders, label heads, FAISS indexes, versions
plugin/                 hooks, the plugin manager, discovery, manifests, a loaded plugin
reply/                  Agent.reply: route, answer, offer, render
learn/                  `agent finetune` and the training it runs
review/                 the review queue and proposed intents
scenarios/              the built-in scenario kinds, default plugins on the same hooks
outlets/                alerts and handoffs delivered to webhooks and commands (`agent alerts`)
replay/                 `agent replay`: conversations in bulk
serve/                  `agent serve`: the HTTP API and the web chat page
cli/                    the `agent` command line
"""

import os

# OpenMP threads that spin while waiting starve every other process on the machine: with four chats
# on two cores, replies were 15x slower. Waiting passively costs a single process nothing measurable.
# Set before torch is imported (it is imported lazily); an explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from agent.plugin.hookspecs import hookimpl  # noqa: E402

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
