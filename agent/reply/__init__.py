"""Answering a message: the Agent every front end calls, routing, offers of two labels, rendering.

agent.py          Agent.reply and the turn's dataclasses: encode once, route, answer, log
router.py         a forced plugin, or the responder whose examples the message is nearest to
offers.py         two close labels offered as a choice, and the person's pick
conversations.py  per conversation between turns: the responder '/use' chose, open offers
render.py         terminal rendering of replies, plugin lists, logs and reports (rich)
"""
