"""Keys for the HTTP service: made once and shown once, stored as SHA-256 hashes with their scopes, checked in
constant time, revoked by name."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from agent.errors import InputError

SCOPES = ("chat", "feedback", "monitor", "review", "operator", "admin")  # admin may do everything
PREFIX = "agk_"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class Key:
    """A key as the home knows it (its secret is never stored)."""

    name: str
    scopes: tuple[str, ...]
    created_at: str
    revoked_at: str | None = None

    def allows(self, scope: str) -> bool:
        """Whether this key may call a route that needs `scope`."""
        return scope in self.scopes or "admin" in self.scopes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "scopes": list(self.scopes), "created_at": self.created_at, "revoked_at": self.revoked_at}


def create_key(store: Any, name: str, scopes: list[str]) -> str:
    """Make a key named `name` with `scopes`; return the key itself (shown once: the home keeps only its hash)."""
    from agent.store import now

    if not _NAME.fullmatch(name):
        raise InputError(f"'{name}' cannot name a key: use letters, digits, '_', '-' or '.', up to 64 characters")
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise InputError(f"scopes {', '.join(unknown) or '(none)'} not known; give one or more of: {', '.join(SCOPES)}")
    if any(k.name == name for k in list_keys(store)):
        raise InputError(f"a key named '{name}' exists; revoke it first (agent keys revoke {name}) or choose another name")
    secret = PREFIX + secrets.token_urlsafe(32)
    store.insert("api_keys", [{"name": name, "key_sha256": _digest(secret), "scopes": ",".join(dict.fromkeys(scopes)),
                               "created_at": now(), "revoked_at": None}], redacted=True)
    return secret


def list_keys(store: Any, revoked: bool = False) -> list[Key]:
    """The home's keys, oldest first (the revoked ones too when asked)."""
    where = "" if revoked else " WHERE revoked_at IS NULL"
    return [_key(r) for r in store.query(f"SELECT * FROM api_keys{where} ORDER BY id")]


def revoke_key(store: Any, name: str) -> Key:
    """Revoke the key named `name` at once; the revoked key."""
    from agent.store import now

    rows = store.query("SELECT * FROM api_keys WHERE name = ? AND revoked_at IS NULL", [name])
    if not rows:
        names = ", ".join(k.name for k in list_keys(store)) or "none"
        raise InputError(f"no key named '{name}' to revoke; the keys are: {names}")
    store.update("api_keys", rows[0]["id"], {"revoked_at": now()}, redacted=True)
    return _key({**rows[0], "revoked_at": now()})


def check_key(store: Any, presented: str) -> Key | None:
    """The live key `presented` is, or None; every stored hash is compared, in constant time, whatever matches."""
    digest, found = _digest(presented), None
    for row in store.query("SELECT * FROM api_keys WHERE revoked_at IS NULL"):
        if hmac.compare_digest(digest, row["key_sha256"]):
            found = _key(row)
    return found


def _digest(secret: str) -> str:
    """The SHA-256 of a key (keys are 256 random bits, so a fast hash cannot be searched back)."""
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def _key(row: dict[str, Any]) -> Key:
    """A Key from its row."""
    return Key(row["name"], tuple(row["scopes"].split(",")), row["created_at"], row.get("revoked_at"))
