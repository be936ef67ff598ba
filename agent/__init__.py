"""agent: a terminal chat agent for business scenarios, built from scenario plugins."""

import os

# OpenMP threads that spin while waiting starve every other process on the machine: with four chats
# on two cores, replies were 15x slower. Waiting passively costs a single process nothing measurable.
# Set before torch is imported (it is imported lazily); an explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from agent.hookspecs import hookimpl  # noqa: E402

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
