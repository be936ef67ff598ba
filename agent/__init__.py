"""agent: a terminal chat agent for business scenarios, built from scenario plugins."""

__version__ = "0.1.0"
