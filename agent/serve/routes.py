"""The /v1 API: answer a message, give feedback, read a conversation, list plugins; and the health routes."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from agent.serve.ids import stored_id
from agent.serve.schemas import ID_PATTERN, NAME_PATTERN, ErrorOut, FeedbackIn, FeedbackOut, FinetuneIn, MessageIn, ReplyOut
from agent.serve.security import ApiError, Caller, require

ConversationId = Annotated[str, Path(pattern=ID_PATTERN, description="The conversation: letters, digits, _ . : @ + -")]
TurnId = Annotated[int, Path(ge=1, le=2**63 - 1, description="A logged turn's id (Reply.turn_id).")]
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)}
router = APIRouter(responses=ERRORS)
ChatKey = Annotated[Caller, Depends(require("chat"))]
FeedbackKey = Annotated[Caller, Depends(require("feedback", public=True))]
ReviewKey = Annotated[Caller, Depends(require("review"))]
AdminKey = Annotated[Caller, Depends(require("admin"))]
OperatorKey = Annotated[Caller, Depends(require("operator"))]


async def on_agent(request: Request, fn: Any) -> Any:
    """Run `fn(agent)` on the inference thread and await it."""
    return await asyncio.wrap_future(request.app.state.worker.call(fn))


async def answer(request: Request, text: str, conversation: str, plugin: str | None = None, user: str | None = None) -> Any:
    """The Reply to one message, through the micro-batching queue; a message the agent refuses is a 400."""
    from agent.errors import AgentError
    from agent.reply.agent import Message

    _ready(request)
    home = request.app.state.worker.agent.settings.home
    message = Message(text, stored_id(home, conversation), plugin, stored_id(home, user))
    reply = await asyncio.wrap_future(request.app.state.worker.ask(message))
    if isinstance(reply, AgentError):
        raise ApiError(400, str(reply))
    return reply


@router.post("/v1/conversations/{conversation_id}/messages", response_model=ReplyOut, tags=["chat"])
async def post_message(request: Request, response: Response, conversation_id: ConversationId, body: MessageIn,
                       caller: ChatKey) -> Any:
    """Answer a message of a conversation; the next message may pick one of the reply's `choices` (1 or 2). The
    `X-Conversation-Token` header is what a caller without a key shows to read the conversation's events."""
    from agent.serve.ids import conversation_token

    reply = await answer(request, body.text, conversation_id, body.plugin, body.user)
    response.headers["X-Conversation-Token"] = conversation_token(request.app.state.worker.agent.settings.home, reply.conversation_id)
    return reply.to_dict()


@router.post("/v1/turns/{turn_id}/feedback", response_model=FeedbackOut, tags=["feedback"])
async def post_feedback(request: Request, turn_id: TurnId, body: FeedbackIn, caller: FeedbackKey) -> Any:
    """Correct a turn's label, rate its reply, or record an item event (like, dislike, click)."""
    given = [k for k in ("label", "rating", "event") if getattr(body, k) is not None]
    if len(given) != 1:
        raise ApiError(422, f"give exactly one of label, rating or event (got {', '.join(given) or 'none'})")
    if caller.public and (body.label is not None or body.conversation_id is None):
        raise ApiError(403, "without a key, feedback rates a reply or an item of your own conversation: give rating or event, "
                            "and conversation_id")
    if body.conversation_id is not None:
        turn = request.app.state.store.turn(turn_id)
        if turn is None or turn["conversation_id"] != stored_id(request.app.state.worker.agent.settings.home, body.conversation_id):
            raise ApiError(404, f"no turn {turn_id} in conversation '{body.conversation_id}'")
    _ready(request)
    return {"turn_id": turn_id, "stored": await on_agent(request, lambda agent: _feedback(agent, turn_id, body))}


def _feedback(agent: Any, turn_id: int, body: FeedbackIn) -> str:
    """Store one piece of feedback; what was stored, in words."""
    from agent.plugin import contributions

    if body.event is not None:
        options = {o.name: o for o in contributions.feedback_options()}
        if body.event.kind not in options:
            raise ApiError(422, f"event.kind '{body.event.kind}' is not known; the plugins register: {', '.join(options) or 'none'}")
        return str(options[body.event.kind].fn(agent, turn_id, body.event.item))
    fid = agent.feedback(turn_id, label=body.label, rating=body.rating, note=body.note, new_label=body.new_label)
    return f"feedback {fid}"


@router.get("/v1/conversations/{conversation_id}", tags=["review"])
async def get_conversation(request: Request, conversation_id: ConversationId, caller: ReviewKey) -> Any:
    """The conversation's turns, oldest first, as stored (redacted), with their predictions, hits and feedback."""
    conversation_id = stored_id(request.app.state.worker.agent.settings.home, conversation_id) or conversation_id
    turns = request.app.state.store.turns(conversation=conversation_id, limit=None)
    if not turns:
        raise ApiError(404, f"no conversation '{conversation_id}' in this home")
    store = request.app.state.store
    return {"conversation_id": conversation_id, "turns": [store.turn(t["id"]) for t in reversed(turns)]}


@router.get("/v1/plugins", tags=["chat"])
async def get_plugins(request: Request, caller: ChatKey) -> Any:
    """What `agent plugins --json` says: each plugin's labels, data sizes and model state, and what was skipped."""
    from agent.plugin.inventory import summarize

    _ready(request)

    def listing(agent: Any) -> dict[str, Any]:
        rows = summarize(agent.manifests, agent.settings, agent.hooks)
        skipped = [{"folder": str(s.path), "reason": s.reason} for s in agent.skipped]
        skipped += [{"folder": r["folder"], "reason": r["error"]} for r in rows if "error" in r]
        return {"plugins": [r for r in rows if "error" not in r], "skipped": skipped}

    return await on_agent(request, listing)


@router.post("/v1/plugins/{name}/finetune", status_code=202, tags=["operator"])
async def post_finetune(request: Request, name: Annotated[str, Path(pattern=NAME_PATTERN)], body: FinetuneIn,
                        caller: OperatorKey) -> Any:
    """Fine-tune a plugin in the background (202 and a job id); chat goes on, and a promoted version is swapped in."""
    manifests = {m.name: m for m in request.app.state.worker.agent.manifests}
    if name not in manifests:
        raise ApiError(404, f"no plugin '{name}'; the plugins are: {', '.join(sorted(manifests))}")
    run = request.app.state.jobs.start(name, manifests[name].folder, body.mode, body.epochs)
    return request.app.state.jobs.view(run)


@router.get("/v1/jobs/{job_id}", tags=["operator"])
async def get_job(request: Request, job_id: Annotated[str, Path(pattern=NAME_PATTERN)], caller: OperatorKey) -> Any:
    """A fine-tune job: queued, running (with progress), done (with its outcome) or failed (with why)."""
    return request.app.state.jobs.view(request.app.state.jobs.get(job_id))


@router.get("/healthz", tags=["operations"])
async def healthz() -> Any:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"])
async def readyz(request: Request, response: Response) -> Any:
    """200 once every plugin's models are loaded; 503 before (and if loading failed, with why)."""
    worker = request.app.state.worker
    if not worker.ready.is_set() or worker.failed is not None:
        response.status_code = 503
        return {"status": "failed" if worker.failed else "loading", "error": str(worker.failed) if worker.failed else None}
    return {"status": "ready", "plugins": sorted(worker.agent.runtimes)}


@router.get("/metrics", tags=["operations"],
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "The Prometheus text format"}})
async def metrics(request: Request, caller: AdminKey) -> Response:
    """Prometheus metrics: requests and latency by route, batch sizes, fallbacks by reason, turns by plugin."""
    body, content_type = request.app.state.metrics.text()
    return Response(body, media_type=content_type)


def _ready(request: Request) -> None:
    """Refuse with 503 while the models load (or when they failed to)."""
    worker = request.app.state.worker
    if worker.failed is not None:
        raise ApiError(503, f"the agent could not load: {worker.failed}")
    if not worker.ready.is_set():
        raise ApiError(503, "the agent is still loading its models; retry shortly (GET /readyz says when)", {"Retry-After": "1"})
