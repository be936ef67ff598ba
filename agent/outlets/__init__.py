"""Outlets: alerts and handoffs delivered to webhooks (signed, retried, queued across restarts) and commands.

Publishing only queues (one row per outlet, in one transaction); a `Deliverer`, on its own threads and
connection, sends. Scoring and replies never wait for a receiver.

tables.py     the outlets, deliveries and delivery_attempts tables (migration outlets.m001_outlets)
targets.py    outlets: check a URL or a command, add, list, remove
declared.py   [[outlets]] in a plugin's plugin.toml, and keeping the outlets table in step with it
publish.py    publish(store, kind, payload, plugin): one queued delivery per outlet; the body formats
send.py       one attempt: a signed POST, or a command with the body on stdin; what is retried
deliverer.py  Deliverer (claim, send, record, back off), Policy, delivering()
cli.py        agent alerts webhook|command add|list|remove, agent alerts deliveries, agent alerts retry
plugin.py     the default plugin: the migration, the command and the manifest table
"""

from agent.outlets.declared import declare
from agent.outlets.deliverer import Deliverer, Policy, delivering
from agent.outlets.publish import publish
from agent.outlets.send import verify

__all__ = ["Deliverer", "Policy", "declare", "delivering", "publish", "verify"]
