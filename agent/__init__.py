"""agent: a terminal chat agent for business scenarios, built from scenario plugins."""

from agent.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
