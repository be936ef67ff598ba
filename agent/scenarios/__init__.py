"""Scenario kinds shipped with the agent, each a default plugin on the same hooks a package uses."""
