"""Outlets a plugin declares in its plugin.toml, one [[outlets]] table each, and keeping the outlets table in step:

    [[outlets]]
    url = "https://hooks.example.com/agent"   # or: command = "notify-ops"
    secret_env = "SHOP_WEBHOOK_SECRET"         # optional: the variable that holds the signing secret
    format = "slack"                           # optional: "json" (the default) or "slack"

They take the declaring plugin's events only. `declare` adds the new ones and retires those the file no longer has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.errors import AgentError, PluginError

if TYPE_CHECKING:
    import sqlite3

    from agent.store import Store

KEYS = {"url", "command", "secret_env", "format"}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Declared:
    """One [[outlets]] entry of a plugin.toml."""

    kind: str
    target: str
    secret_env: str | None = None
    format: str = "json"


def parse_outlets(table: Any) -> list[Declared] | None:
    """The [[outlets]] array of tables (None when absent); a bad entry names its key and the fix."""
    from agent.plugin.manifest import TableReader, refuse_unknown

    entries = table.get("outlets", list, None, "an array of tables: [[outlets]] with url = ... or command = ...")
    if entries is None:
        return None
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise table.fail(f"outlets[{i}]", "a table ([[outlets]] with url = ... or command = ...)", entry)
        refuse_unknown(table.path, entry, KEYS, f" in [[outlets]] number {i + 1}")
        out.append(_entry(TableReader(table.path, entry, f"outlets[{i}]."), i + 1))
    return out


def _entry(r: Any, number: int) -> Declared:
    """One entry: exactly one of url and command, an optional secret variable (webhooks) and format."""
    from agent.outlets.targets import FORMATS, check_target

    url, command = r.get("url", str, None, "a string"), r.get("command", str, None, "a string")
    if (url is None) == (command is None):
        where = f"{r.path}: [[outlets]] number {number}"
        raise PluginError(f"{where} has both url and command; keep one (each outlet is a webhook or a command)" if url is not None
                          else f'{where} has neither url nor command; add url = "https://..." or command = "..."')
    kind, key, target = ("webhook", "url", url) if url is not None else ("command", "command", command)
    try:
        check_target(kind, target)
    except AgentError:
        raise r.fail(key, "an http:// or https:// URL with a host" if url is not None else "a shell line to run", target) from None
    secret_env = r.get("secret_env", str, None, "the name of an environment variable")
    if secret_env is not None and kind != "webhook":
        raise PluginError(f"{r.path}: key '{r.prefix}secret_env' is for webhooks (a command's input is not signed); remove it")
    if secret_env is not None and not ENV_NAME.fullmatch(secret_env):
        raise r.fail("secret_env", "the name of an environment variable (letters, digits, '_')", secret_env)
    fmt = r.get("format", str, "json", "a string")
    if fmt not in FORMATS:
        raise r.fail("format", f"one of {', '.join(repr(f) for f in FORMATS)}", fmt)
    return Declared(kind, target, secret_env, fmt)


def declare(store: "Store", manifests: list[Any]) -> None:
    """Bring the outlets table in step with the [[outlets]] of these plugins (others' declared outlets are kept)."""
    from agent.outlets.targets import retire
    from agent.store import now

    wanted = {str(m.path): (m.name, set(m.tables.get("outlets") or [])) for m in manifests}

    def write(conn: "sqlite3.Connection") -> None:
        stamp = now()
        for source, (plugin, entries) in wanted.items():
            have = _declared_rows(conn, source)
            for outlet_id in [i for d, i in have.items() if d not in entries]:
                retire(conn, outlet_id, stamp)
            for d in entries - set(have):
                conn.execute("INSERT INTO outlets (kind, target, secret_env, plugin, format, source, created_at) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", (d.kind, d.target, d.secret_env, plugin, d.format, source, stamp))

    if wanted and (any(e for _, e in wanted.values()) or _any_declared(store)):
        store.transaction(write)


def _declared_rows(conn: "sqlite3.Connection", source: str) -> dict[Declared, int]:
    """The active outlets declared in one plugin.toml, by entry."""
    rows = conn.execute("SELECT id, kind, target, secret_env, format FROM outlets WHERE source = ? AND removed_at IS NULL",
                        (source,)).fetchall()
    return {Declared(kind, target, env, fmt): i for i, kind, target, env, fmt in rows}


def _any_declared(store: "Store") -> bool:
    """Whether some declared outlet is active (else a home without [[outlets]] needs no write at all)."""
    return bool(store.query("SELECT 1 FROM outlets WHERE source IS NOT NULL AND removed_at IS NULL LIMIT 1"))
