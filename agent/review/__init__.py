"""People's side of learning: what to label next, and new intents proposed.

queue.py      logged turns ranked by what a decision on them would teach
proposals.py  new intents proposed from questions the agent could not place
"""
