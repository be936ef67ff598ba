"""Rasa's REST channel (`POST /webhooks/rest/webhook`): an adapter over the one reply path, so a front end written
for Rasa works unchanged. The two-choice offer becomes Rasa's buttons; a button's payload sent back picks. The
Rasa-style intent payloads `/good` and `/bad` rate the conversation's last answer (a front end's thumbs). What a
person wrote since the sender's last message comes first, marked `custom.author`; while a person has the
conversation, the agent adds no message of its own."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from agent.serve.ids import stored_id
from agent.serve.routes import ERRORS, ChatKey, answer, on_agent
from agent.serve.schemas import RasaIn, RasaOut
from agent.serve.security import ApiError

router = APIRouter(responses=ERRORS)
RATINGS = {"/good": "good", "/bad": "bad"}  # payloads that rate the last answer instead of asking


@router.post("/webhooks/rest/webhook", response_model=list[RasaOut], response_model_exclude_none=True, tags=["rasa"])
async def webhook(request: Request, body: RasaIn, caller: ChatKey) -> Any:
    """Answer `message` in conversation `sender`: a list of bot messages, with buttons when the agent offers two labels."""
    if body.message.strip() in RATINGS:
        return await _rate(request, body.sender, RATINGS[body.message.strip()])
    reply = await answer(request, body.message, body.sender)
    buttons = [{"title": c.get("about") or c["label"], "payload": str(n)} for n, c in enumerate(reply.choices, 1)]
    before = [{"recipient_id": body.sender, "text": str(m.get("text", "")), "custom": {"author": m.get("author", "person")}}
              for m in reply.extra("messages") if isinstance(m, dict)]  # a person's replies since the last message
    return before + ([{"recipient_id": body.sender, "text": reply.text, "buttons": buttons or None}] if reply.text else [])


async def _rate(request: Request, sender: str, rating: str) -> list[dict[str, Any]]:
    """Store a rating of the sender's last answered turn; a short acknowledgement as Rasa's bot message."""
    conversation = stored_id(request.app.state.worker.agent.settings.home, sender)
    turn = request.app.state.store.last_turn(conversation)
    if turn is None:
        raise ApiError(404, f"conversation '{sender}' has no answer to rate yet; send a message first")
    await on_agent(request, lambda agent: agent.feedback(turn["id"], rating=rating))
    return [{"recipient_id": sender, "text": "Thanks for your feedback."}]
