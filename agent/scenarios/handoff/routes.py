"""The handoff routes (through `register_routes`): the operator's inbox under /v1/handoffs (scope `operator`), and
the events a customer's page follows, /v1/conversations/{id}/events (scope `chat`), as server-sent events or JSON."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Annotated, Any, AsyncIterator

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from agent.serve.ids import stored_id
from agent.serve.routes import on_agent
from agent.serve.schemas import ID_PATTERN
from agent.serve.security import ApiError, Caller, require

router = APIRouter()
OperatorKey = Annotated[Caller, Depends(require("operator"))]
ChatKey = Annotated[Caller, Depends(require("chat"))]
ConversationId = Annotated[str, Path(pattern=ID_PATTERN, description="The conversation: letters, digits, _ . : @ + -")]
SHOWN = ("waiting", "taken", "reply", "released")  # what a customer's page sees: the person's replies and state changes
POLL_S, STREAM_S = 0.2, 25.0  # how often a stream looks for new events; how long one lasts before the browser reconnects


class ReplyIn(BaseModel):
    """The operator's reply to the customer."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000, description="What the customer reads, marked as written by a person.")


class LabelIn(BaseModel):
    """A label for one of the customer's messages: a correction `agent finetune` learns."""

    model_config = ConfigDict(extra="forbid")
    turn_id: int = Field(ge=1, le=2**63 - 1, description="The customer's turn (GET /v1/handoffs/{conversation} lists them).")
    label: str = Field(min_length=1, max_length=64)
    new_label: bool = Field(False, description="Teach a label the plugin does not know yet.")


def _id(request: Request, conversation: str) -> str:
    """The conversation id as the home stores it."""
    return stored_id(request.app.state.worker.agent.settings.home, conversation) or conversation


def _do(fn: Any, *args: Any) -> Any:
    """Run an inbox action; its refusal as a JSON error with the right status."""
    from agent.scenarios.handoff.inbox import HandoffError

    try:
        return fn(*args)
    except HandoffError as exc:
        raise ApiError(exc.status, str(exc)) from exc


@router.get("/v1/handoffs", tags=["operator"])
async def list_handoffs(request: Request, caller: OperatorKey) -> Any:
    """Conversations waiting for a person or taken by one, oldest first: reason, state, seconds waited, last message."""
    from agent.scenarios.handoff.inbox import waiting

    return {"handoffs": waiting(request.app.state.store)}


@router.get("/v1/handoffs/{conversation_id}", tags=["operator"])
async def get_handoff(request: Request, conversation_id: ConversationId, caller: OperatorKey) -> Any:
    """The conversation for the operator: its handoff, its turns with their predictions, the person's replies."""
    from agent.scenarios.handoff.inbox import show

    return _do(show, request.app.state.store, _id(request, conversation_id))


@router.post("/v1/handoffs/{conversation_id}/take", tags=["operator"])
async def take_handoff(request: Request, conversation_id: ConversationId, caller: OperatorKey,
                       force: Annotated[bool, Query(description="Take it over from the operator who has it")] = False) -> Any:
    """Take the conversation (the key's name is the operator); the agent stays silent until it is released."""
    from agent.scenarios.handoff.inbox import take

    return _do(take, request.app.state.store, _id(request, conversation_id), caller.name, force)


@router.post("/v1/handoffs/{conversation_id}/reply", tags=["operator"])
async def reply_handoff(request: Request, conversation_id: ConversationId, body: ReplyIn, caller: OperatorKey) -> Any:
    """Send the customer a reply (the conversation must be taken); their page shows it at once."""
    from agent.scenarios.handoff.inbox import privacy_of, reply

    conversation = _id(request, conversation_id)
    privacy = privacy_of(request.app.state.worker.agent, conversation)
    return _do(reply, request.app.state.store, conversation, body.text, caller.name, privacy)


@router.post("/v1/handoffs/{conversation_id}/label", tags=["operator"])
async def label_handoff(request: Request, conversation_id: ConversationId, body: LabelIn, caller: OperatorKey) -> Any:
    """Label one of the customer's messages; it counts as a correction for fine-tuning, review and proposals."""
    from agent.scenarios.handoff.inbox import label

    conversation = _id(request, conversation_id)
    fid = await on_agent(request, lambda agent: _do(label, agent, conversation, body.turn_id, body.label, caller.name, body.new_label))
    return {"turn_id": body.turn_id, "label": body.label, "feedback_id": fid}


@router.post("/v1/handoffs/{conversation_id}/release", tags=["operator"])
async def release_handoff(request: Request, conversation_id: ConversationId, caller: OperatorKey) -> Any:
    """Give the conversation back to the agent, which answers the next message."""
    from agent.scenarios.handoff.inbox import release

    return _do(release, request.app.state.store, _id(request, conversation_id), caller.name)


@router.get("/v1/conversations/{conversation_id}/events", tags=["chat"],
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                             "description": "JSON {events, last}; or, with Accept: text/event-stream, a stream of them"}})
async def conversation_events(request: Request, conversation_id: ConversationId, caller: ChatKey,
                              after: Annotated[int, Query(ge=0, le=2**63 - 1, description="The last event id seen")] = 0,
                              wait: Annotated[float, Query(ge=0, le=30, description="JSON only: wait up to this many seconds")] = 0,
                              token: Annotated[str | None, Query(max_length=64, description="Without a key: the X-Conversation-Token "
                                                                 "an answer to this conversation's messages carried")] = None) -> Any:
    """The person's replies and the handoff's state changes after event `after`: as server-sent events (with
    `Accept: text/event-stream`; `Last-Event-ID` resumes), or as JSON, waiting up to `wait` seconds for one (a long poll)."""
    conversation = _id(request, conversation_id)
    if caller.public:
        _check_token(request, conversation, token or request.headers.get("x-conversation-token"))
    resume = request.headers.get("last-event-id", "")
    if resume and not re.fullmatch(r"[0-9]{1,18}", resume):
        raise ApiError(422, f"the Last-Event-ID header must be an event id (digits, as the stream's 'id:' lines give), not {resume[:40]!r}")
    after = max(after, int(resume)) if resume else after
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(_stream(request, conversation, after), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    found = await _poll(request, conversation, after, wait)
    return {"events": found, "last": found[-1]["id"] if found else after}


def _check_token(request: Request, conversation: str, token: str | None) -> None:
    """Refuse a caller without a key who cannot show the conversation's token."""
    import hmac

    from agent.serve.ids import conversation_token

    expected = conversation_token(request.app.state.worker.agent.settings.home, conversation).encode()
    if token is None or not hmac.compare_digest(token.encode("utf-8", "replace"), expected):
        raise ApiError(403, "without a key, a conversation's events need its token: send ?token= with the X-Conversation-Token "
                            "header that the answers to its messages carry")


def _shown(request: Request, conversation: str, after: int) -> list[dict[str, Any]]:
    """The events a customer sees after an id: no operator's name, only that a person wrote."""
    from agent.scenarios.handoff.inbox import events

    return [{**e, "author": "agent" if e["author"] == "agent" else "person"} for e in events(request.app.state.store, conversation, after, SHOWN)]


async def _poll(request: Request, conversation: str, after: int, wait: float) -> list[dict[str, Any]]:
    """Events after `after`, waiting up to `wait` seconds for the first."""
    deadline = time.monotonic() + wait
    while True:
        found = _shown(request, conversation, after)
        if found or time.monotonic() >= deadline or await request.is_disconnected():
            return found
        await asyncio.sleep(POLL_S)


async def _stream(request: Request, conversation: str, after: int) -> AsyncIterator[str]:
    """Server-sent events for a while; the browser's EventSource reconnects with Last-Event-ID."""
    yield "retry: 500\n\n"
    deadline = time.monotonic() + STREAM_S
    while time.monotonic() < deadline and not await request.is_disconnected():
        for event in _shown(request, conversation, after):
            after = event["id"]
            yield f"id: {after}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"
        await asyncio.sleep(POLL_S)
