"""One attempt at one delivery: POST to a webhook (signed when it has a secret), or run a command with the body on
stdin. Every outcome is a `Result`; whether a retry can help is decided here."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from typing import Any

RETRIED_4XX = (408, 429)  # a timeout and "too many requests": the receiver may take it later
READ_LIMIT = 64 * 1024  # bytes of a response read (and dropped) before the connection is closed


@dataclass
class Result:
    """How one attempt went: status is the HTTP status or the command's exit code."""

    ok: bool
    status: int | None = None
    error: str | None = None
    final: bool = False  # no retry can help (the receiver refused the event itself)
    ms: float = 0.0


def sign(secret: str, body: bytes) -> str:
    """The X-Agent-Signature value: 'sha256=' and the hex HMAC-SHA256 of the raw body with the secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether a received X-Agent-Signature header matches the body (constant-time)."""
    return hmac.compare_digest(sign(secret, body), header or "")


def headers(uid: str, event: str, body: bytes, secret: str | None) -> dict[str, str]:
    """The request headers: JSON, the delivery and event for deduplication, the signature when there is a secret."""
    from agent import __version__

    out = {"Content-Type": "application/json", "User-Agent": f"agent-outlets/{__version__}", "X-Agent-Delivery": uid,
           "X-Agent-Event": event}
    if secret:
        out["X-Agent-Signature"] = sign(secret, body)
    return out


def post(url: str, body: bytes, head: dict[str, str], timeout: float) -> Result:
    """POST the body; 2xx is delivered, other statuses and network errors are failures (4xx but 408/429 final)."""
    import http.client
    import urllib.error
    import urllib.request

    start = time.perf_counter()
    try:
        with _opener().open(urllib.request.Request(url, data=body, headers=head, method="POST"), timeout=timeout) as response:
            response.read(READ_LIMIT)
            return Result(True, response.status, ms=_ms(start))
    except urllib.error.HTTPError as exc:
        return _refused(exc.code, str(exc.reason), exc.headers, _ms(start))
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, garbled
        return Result(False, None, _network_error(exc, timeout), ms=_ms(start))


def _refused(code: int, reason: str, head: Any, ms: float) -> Result:
    """A non-2xx answer: retried when the receiver may take it later (5xx, 408, 429), else final."""
    if 300 <= code < 400:
        where = head.get("Location") if head is not None else None
        return Result(False, code, f"HTTP {code}: redirected to {where}; give that URL instead", final=True, ms=ms)
    final = 400 <= code < 500 and code not in RETRIED_4XX
    return Result(False, code, f"HTTP {code} {reason}".strip(), final=final, ms=ms)


def _network_error(exc: BaseException, timeout: float) -> str:
    """A network failure in a few words."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return f"no answer within {timeout:g} s"
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def _opener() -> Any:
    """A urllib opener that does not follow redirects (a POST must reach the URL given, or fail saying where it went)."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(NoRedirect)


def run_command(command: str, body: bytes, env: dict[str, str], timeout: float) -> Result:
    """Run the shell line with the body on stdin; exit status 0 is delivered, anything else is retried."""
    import signal
    import subprocess

    start = time.perf_counter()
    try:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ, **env}, start_new_session=True)
    except OSError as exc:
        return Result(False, None, f"the command could not start: {exc}", ms=_ms(start))
    try:
        _, err = proc.communicate(body, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the shell and what it started
        proc.communicate()
        return Result(False, None, f"the command ran over {timeout:g} s and was stopped", ms=_ms(start))
    if proc.returncode == 0:
        return Result(True, 0, ms=_ms(start))
    last = err.decode("utf-8", "replace").strip().splitlines()[-1:]
    return Result(False, proc.returncode, f"exit status {proc.returncode}" + (f": {last[0][:300]}" if last else ""), ms=_ms(start))


def _ms(start: float) -> float:
    """Milliseconds since `start`."""
    return round((time.perf_counter() - start) * 1000, 1)
