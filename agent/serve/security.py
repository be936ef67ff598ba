"""Who may call what: keys with scopes (a FastAPI dependency), a rate limit per key, a cap on request bodies, and
the refusal to listen beyond this machine with no key made."""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from fastapi import Request

from agent.errors import AgentError


class ApiError(Exception):
    """An HTTP error with a JSON body that says what went wrong and how to fix it."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass(frozen=True)
class Caller:
    """Who is calling: a key's name, or the address of an anonymous chat (--public-chat)."""

    name: str
    scopes: tuple[str, ...]
    public: bool = False  # no key: a customer on the web page or Rasa's channel (--public-chat)


def require(scope: str, public: bool = False) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency that lets a request through only with a live key holding `scope` (or admin), within its rate;
    with --public-chat, the chat routes (and those marked `public`, which check more themselves) without a key."""

    async def check(request: Request) -> Caller:
        state = request.app.state
        token = _bearer(request)
        if token is None and (scope == "chat" or public) and state.options.public_chat:
            caller = Caller(f"public:{request.client.host if request.client else '-'}", ("chat",), public=True)
        elif token is None:
            raise ApiError(401, "this route needs a key: send 'Authorization: Bearer KEY' "
                                f"(make one with: agent keys create NAME --scope {scope})", {"WWW-Authenticate": "Bearer"})
        else:
            from agent.serve.keys import check_key

            key = check_key(state.store, token)
            if key is None:
                raise ApiError(401, "the key is not known or was revoked; make one with: agent keys create NAME",
                               {"WWW-Authenticate": "Bearer"})
            if not key.allows(scope):
                raise ApiError(403, f"key '{key.name}' has scopes {', '.join(key.scopes)}; this route needs '{scope}' "
                                    f"(make a key with it: agent keys create NAME --scope {scope})")
            caller = Caller(key.name, key.scopes)
        state.limiter.check(caller.name)
        return caller

    return check


def _bearer(request: Request) -> str | None:
    """The key in `Authorization: Bearer KEY`, or None when there is no such header."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "the Authorization header must read 'Bearer KEY'", {"WWW-Authenticate": "Bearer"})
    return token.strip()


class RateLimiter:
    """A moving-window limit per caller (`limits`), e.g. '20/second'; past it, 429 with Retry-After."""

    def __init__(self, rate: str) -> None:
        from limits import parse
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        try:
            self.item = parse(rate)
        except ValueError as exc:
            raise AgentError(f"--rate {rate!r} is not a rate; write it as N/second, N/minute or N/hour") from exc
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, who: str) -> None:
        """Count one request of `who`, or refuse it when over the limit."""
        if not self.limiter.hit(self.item, who):
            reset = self.limiter.get_window_stats(self.item, who).reset_time
            wait = max(1, int(reset - time.time() + 0.999))
            raise ApiError(429, f"too many requests for '{who}': the limit is {self.item}; retry in {wait} s",
                           {"Retry-After": str(wait)})


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is refused with 413 before any route sees it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._refuse(send)
            if message["type"] == "http.disconnect":
                return None
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        """The 413 answer, as JSON."""
        payload = json.dumps({"error": f"the request body is over {self.max_bytes:,} bytes; send less, "
                                       "or start the server with a larger --max-body", "fields": []}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, keys: int, insecure: bool) -> None:
    """Refuse to listen beyond this machine while no key exists (nothing answers a stranger unless configured to)."""
    if not is_loopback(host) and keys == 0 and not insecure:
        raise AgentError(f"refusing to listen on {host}: no key exists, so only --public-chat routes could be used and "
                         "nothing would say who is calling. Make a key first (agent keys create NAME --scope chat), "
                         "or pass --insecure if this network is yours alone")
