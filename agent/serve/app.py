"""The ASGI app: `create_app(settings, options)` builds it (tests build one on a temporary home); `serve` runs it on
uvicorn. The lifespan starts the inference thread, which loads the models (/readyz says when) and, on shutdown,
answers what is queued before the process exits."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.errors import AgentError
from agent.serve.security import ApiError, BodyLimit, RateLimiter

if TYPE_CHECKING:
    from agent.reply.agent import Agent
    from agent.settings import Settings


UNPARSED = "the body must be a JSON object in UTF-8, sent with Content-Type: application/json"


@dataclass
class ServeOptions:
    """How the service answers: who without a key, from where, how fast, how much."""

    public_chat: bool = False  # chat routes answer without a key (nothing else opens)
    cors_origins: list[str] = field(default_factory=list)  # browser origins allowed to call the API
    rate: str = "20/second"  # per key (per address for public chat)
    max_body: int = 64 * 1024  # bytes of one request body
    wait_ms: float = 5.0  # how long the first message of a batch waits for others
    max_batch: int = 64  # messages answered in one encoder pass at most
    device: str = "auto"


def create_app(settings: "Settings", options: ServeOptions | None = None, agent: "Agent | None" = None) -> FastAPI:
    """The service for one home: its routes (plugins' too: the agent is made, and its plugins found, here; their
    models load on the inference thread), errors as JSON, keys, limits and metrics."""
    from agent.reply.agent import Agent
    from agent.serve.jobs import Jobs
    from agent.serve.metrics import Metrics
    from agent.serve.worker import Worker

    options = options or ServeOptions()
    metrics = Metrics()
    agent = agent or Agent(settings, device=options.device)
    worker = Worker(agent, options.wait_ms, options.max_batch, metrics.batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from agent.outlets import Deliverer, declare
        from agent.store import Store

        app.state.store = Store(settings.db_path)
        declare(app.state.store, agent.manifests)  # the plugins' [[outlets]]
        app.state.deliverer = deliverer = Deliverer(settings.db_path).start()  # alerts and handoffs to webhooks and commands
        worker.start()
        yield
        worker.stop()
        deliverer.stop()
        app.state.store.close()

    app = FastAPI(title="agent", version="1", lifespan=lifespan,
                  description="Chat with the agent's scenario plugins, give feedback, read conversations. "
                              "Send `Authorization: Bearer KEY` (agent keys create NAME --scope chat).")
    app.state.options, app.state.worker, app.state.metrics = options, worker, metrics
    app.state.jobs = Jobs(settings, options.device)
    app.state.limiter = RateLimiter(options.rate)
    _routes(app)
    _errors(app)
    _middleware(app, options, metrics)
    return app


def _routes(app: FastAPI) -> None:
    """The API's routers, then those scenario kinds contribute."""
    from agent.plugin import contributions
    from agent.serve import page, rasa, routes

    app.include_router(page.router)
    app.include_router(routes.router)
    app.include_router(rasa.router)
    for router in contributions.routes():
        app.include_router(router, responses=routes.ERRORS)


def _errors(app: FastAPI) -> None:
    """Every error is JSON that says what went wrong (and the field at fault)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message, "fields": []}, exc.status, headers=exc.headers)

    @app.exception_handler(AgentError)
    async def agent_error(request: Request, exc: AgentError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "fields": []}, 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = UNPARSED if exc.status_code == 400 and "parsing the body" in str(exc.detail) else str(exc.detail)
        return JSONResponse({"error": message, "fields": []}, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if "json" not in request.headers.get("content-type", "json") and any(e["loc"] == ("body",) for e in exc.errors()):
            return JSONResponse({"error": UNPARSED, "fields": [{"field": "body", "expected": "a JSON object"}]}, 415)
        if any(e["type"] == "json_invalid" for e in exc.errors()):  # FastAPI names the byte offset ("body.0") only
            return JSONResponse({"error": UNPARSED, "fields": [{"field": "body", "expected": "a JSON object"}]}, 400)
        fields = [{"field": ".".join(str(p) for p in e["loc"]), "expected": e["msg"]} for e in exc.errors()]
        words = "; ".join(f"{f['field']}: {f['expected']}" for f in fields)
        return JSONResponse({"error": f"the request is not valid: {words}", "fields": fields}, 422)


def _middleware(app: FastAPI, options: ServeOptions, metrics: Any) -> None:
    """Timing and counting by route; CORS for the origins given; the body cap outermost."""

    from agent.serve.metrics import Timing

    app.add_middleware(Timing, metrics=metrics)
    if options.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=options.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Conversation-Token"],
                           expose_headers=["X-Conversation-Token"])
    app.add_middleware(BodyLimit, max_bytes=options.max_body)


def serve(settings: "Settings", options: ServeOptions, host: str, port: int) -> None:
    """Run the app on uvicorn until Ctrl-C or SIGTERM; requests in flight are answered and logged first."""
    import uvicorn

    uvicorn.run(create_app(settings, options), host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)
