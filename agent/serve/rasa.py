"""Rasa's REST channel (`POST /webhooks/rest/webhook`): an adapter over the one reply path, so a front end written
for Rasa works unchanged. The two-choice offer becomes Rasa's buttons; a button's payload sent back picks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from agent.serve.routes import ERRORS, ChatKey, answer
from agent.serve.schemas import RasaIn, RasaOut

router = APIRouter(responses=ERRORS)


@router.post("/webhooks/rest/webhook", response_model=list[RasaOut], response_model_exclude_none=True, tags=["rasa"])
async def webhook(request: Request, body: RasaIn, caller: ChatKey) -> Any:
    """Answer `message` in conversation `sender`: a list of bot messages, with buttons when the agent offers two labels."""
    reply = await answer(request, body.message, body.sender)
    buttons = [{"title": c.get("about") or c["label"], "payload": str(n)} for n, c in enumerate(reply.choices, 1)]
    return [{"recipient_id": body.sender, "text": reply.text, "buttons": buttons or None}]
