"""`agent replay`: run logged or scripted conversations through the agent and report what changed."""
