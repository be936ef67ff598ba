"""Conversation and user ids as the home stores them: an id that holds a personal number (a phone number as a
channel's sender id) is replaced by a keyed hash, the same every time, so the conversation still reads back."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

STORED = re.compile(r"anon-[0-9a-f]{24}")  # what an id holding personal data is stored as
SECRET = "id-secret"  # beside the database; whoever reads the home could reverse nothing without it


def stored_id(home: Path, value: str | None) -> str | None:
    """`value` itself, or `anon-` and a keyed hash of it when it holds personal data."""
    from agent.text.guard import redact

    if value is None or STORED.fullmatch(value) or redact(value)[1] == 0:
        return value  # an id as the home already stores it (an operator copies it from the inbox) stays as it is
    digest = hmac.new(_secret(Path(home)), value.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"anon-{digest[:24]}"


def conversation_token(home: Path, conversation: str) -> str:
    """What proves a caller without a key is in a conversation: a keyed hash of its id, given with each answer to
    its messages (the X-Conversation-Token header) and asked for where its events are read."""
    return hmac.new(_secret(Path(home)), f"conversation:{conversation}".encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def _secret(home: Path) -> bytes:
    """The home's key for ids, made once (readable by its owner only)."""
    path = home / SECRET
    home.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(32))
    return path.read_bytes()
