"""The web chat page at `/`: plain HTML, CSS and JavaScript from static/, no build step and nothing from a CDN,
served with a Content-Security-Policy that allows only its own scripts and styles."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from agent.serve.security import ApiError

STATIC = Path(__file__).resolve().parent / "static"
FILES = {"chat.js": "text/javascript", "chat.css": "text/css"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}
router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> Response:
    """The chat page."""
    return Response((STATIC / "index.html").read_bytes(), media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    """The page's script and style sheet (only those)."""
    if name not in FILES:
        raise ApiError(404, f"no file {name!r}; the page has {', '.join(FILES)}")
    return Response((STATIC / name).read_bytes(), media_type=f"{FILES[name]}; charset=utf-8", headers=HEADERS)
