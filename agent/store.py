"""The SQLite log (sqlite-utils, WAL, named migrations): conversations, turns, predictions, hits, feedback."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from agent.errors import StoreError

BUSY_MS = 5000  # one wait of SQLite's busy handler
BUSY_SECONDS = float(os.environ.get("AGENT_BUSY_SECONDS", "60"))  # how long a writer keeps retrying in all
MIGRATIONS: list[tuple[str, Callable[[Any], None]]] = []


def migration(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    """Register a migration; they run once each, in the order written."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(db: Any) -> None:
    """Conversations, turns, top predictions, retrieval hits, feedback."""
    db["conversations"].create({"id": str, "started_at": str, "last_at": str}, pk="id")
    db["turns"].create(
        {"id": int, "conversation_id": str, "created_at": str, "text": str, "reply": str, "plugin": str,
         "label": str, "confidence": float, "route_confidence": float, "fallback_reason": str,
         "latency_ms": float, "timings": str, "redactions": int},
        pk="id", foreign_keys=[("conversation_id", "conversations", "id")],
    )
    db["predictions"].create({"id": int, "turn_id": int, "rank": int, "label": str, "probability": float},
                             pk="id", foreign_keys=[("turn_id", "turns", "id")])
    db["hits"].create({"id": int, "turn_id": int, "rank": int, "corpus_id": str, "score": float, "text": str},
                      pk="id", foreign_keys=[("turn_id", "turns", "id")])
    db["feedback"].create({"id": int, "turn_id": int, "created_at": str, "kind": str, "label": str, "note": str},
                          pk="id", foreign_keys=[("turn_id", "turns", "id")])
    for table, cols in (("turns", ["conversation_id"]), ("predictions", ["turn_id"]), ("hits", ["turn_id"]), ("feedback", ["turn_id"])):
        db[table].create_index(cols)


@migration
def m002_turns_fts(db: Any) -> None:
    """Full-text search over what people wrote and what the agent answered."""
    db["turns"].enable_fts(["text", "reply"], create_triggers=True, tokenize="porter")


@migration
def m003_finetune_runs(db: Any) -> None:
    """One row per `agent finetune` run: what was trained, how it scored, whether it was promoted."""
    db["finetune_runs"].create(
        {"id": int, "plugin": str, "version": str, "started_at": str, "finished_at": str, "status": str,
         "mode": str, "device": str, "epochs": float, "seconds": float, "train_rows": int, "holdout_rows": int,
         "accuracy": float, "current_accuracy": float, "macro_f1": float, "current_version": str,
         "report": str},
        pk="id",
    )
    db["finetune_runs"].create_index(["plugin"])


@migration
def m004_turn_annotations(db: Any) -> None:
    """What observer plugins and observe_turn hooks said of each turn (JSON)."""
    db["turns"].add_column("annotations", str)


@migration
def m005_replay_runs(db: Any) -> None:
    """The corpus entry each turn was answered from, the plugin it was forced to; one row per `agent replay` run."""
    db["turns"].add_column("answer_id", str)
    db["turns"].add_column("forced", str)
    db["replay_runs"].create(
        {"id": int, "started_at": str, "finished_at": str, "status": str, "source": str, "engine": str,
         "dry_run": int, "turns": int, "conversations": int, "bad_lines": int, "errors": int, "expected": int,
         "accuracy": float, "compared": int, "changed": int, "seconds": float, "turns_per_s": float, "report": str},
        pk="id",
    )


@migration
def m006_turn_warnings(db: Any) -> None:
    """What went wrong inside a turn without ending it (a plugin hook that raised or timed out), as JSON."""
    db["turns"].add_column("warnings", str)


@migration
def m009_users(db: Any) -> None:
    """Who each turn came from (a user id; the conversation id when none is given)."""
    db["turns"].add_column("user_id", str)
    db.execute("UPDATE turns SET user_id = conversation_id WHERE user_id IS NULL")  # before: the conversation was the user


@migration
def m010_turn_extras(db: Any) -> None:
    """What plugins added to each reply, by plugin (JSON)."""
    db["turns"].add_column("extras", str)


@migration
def m011_turn_choices(db: Any) -> None:
    """The two labels a turn offered to choose from (JSON), and on the turn that picked one, the offering turn."""
    db["turns"].add_column("choices", str)
    db["turns"].add_column("picked_from", int)


@migration
def m012_finetune_trigger(db: Any) -> None:
    """What started each fine-tune run: a person ("manual") or the plugin's own policy ("policy")."""
    db["finetune_runs"].add_column("trigger", str)


@migration
def m013_api_keys(db: Any) -> None:
    """Keys of the HTTP service: a name, the SHA-256 of the key (never the key), its scopes, when made and revoked."""
    db["api_keys"].create({"id": int, "name": str, "key_sha256": str, "scopes": str, "created_at": str, "revoked_at": str}, pk="id")
    db["api_keys"].create_index(["name"])


def now() -> str:
    """UTC timestamp, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Store:
    """One database file; safe to share between threads (one writer at a time)."""

    def __init__(self, path: Path) -> None:
        import sqlite_utils

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:  # autocommit mode: every write below opens its own BEGIN IMMEDIATE transaction
            conn = sqlite3.connect(str(self.path), timeout=BUSY_MS / 1000, check_same_thread=False, isolation_level=None)
            self.db = sqlite_utils.Database(conn)
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
            _retry(self.path, lambda: self.db.execute("PRAGMA journal_mode = WAL").fetchall())
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA secure_delete = ON")  # text replaced or deleted is overwritten, not left in free pages
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise _explain(self.path, exc) from exc

    def _pending(self) -> list[tuple[str, Callable[[Any], None]]]:
        """Migrations this file has not seen yet: the log's own, then those plugins register (namespaced)."""
        from agent.plugin import contributions

        done = {r["name"] for r in self.db["_migrations"].rows} if self.db["_migrations"].exists() else set()
        pending = [(name, fn) for name, fn in MIGRATIONS if name not in done]
        return pending + [(m.name, m.fn) for m in contributions.migrations() if m.name not in done and m.legacy not in done]

    def _migrate(self) -> None:
        """Apply pending migrations, one process at a time (a lock file beside the database)."""
        if not _retry(self.path, self._pending):
            return
        import fcntl

        with self._lock, open(self.path.with_name(self.path.name + ".migrate-lock"), "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # another process may be migrating the same file right now
            for name, fn in _retry(self.path, self._pending):
                def apply(conn: sqlite3.Connection, fn: Callable[[Any], None] = fn, name: str = name) -> None:
                    fn(self.db)
                    conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, now()))

                self.db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
                self._write(apply)

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run fn in one BEGIN IMMEDIATE transaction, retrying while other writers hold the database."""

        def attempt() -> Any:
            with self._lock:
                conn = self.db.conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return result

        return _retry(self.path, attempt)

    def log_turn(self, turn: dict[str, Any], predictions: list[tuple[str, float]], hits: list[dict[str, Any]]) -> int:
        """Store a turn with its predictions and hits in one transaction; return the turn id."""
        return self.log_turns([(turn, predictions, hits)])[0]

    def log_turns(self, records: list[tuple[dict[str, Any], list[tuple[str, float]], list[dict[str, Any]]]]) -> list[int]:
        """Store turns (row, predictions, hits) in one transaction; return their ids in order."""

        def write(conn: sqlite3.Connection) -> list[int]:
            stamp = now()
            return [_insert_turn(conn, stamp, *record) for record in records]

        return self._write(write)

    def add_feedback(self, turn_id: int, kind: str, label: str | None = None, note: str | None = None) -> int:
        """Record a person's correction or rating of a turn."""
        if self.turn(turn_id) is None:
            raise StoreError(f"no turn {turn_id} in {self.path}; list turns with: agent logs")

        if note is not None:  # a free-text note may repeat what the customer wrote
            from agent.text.guard import redact

            note = redact(note)[0]

        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute("INSERT INTO feedback (turn_id, created_at, kind, label, note) VALUES (?, ?, ?, ?, ?)",
                               (turn_id, now(), kind, label, note))
            return int(cur.lastrowid)

        return self._write(write)

    def labelled_turns(self, plugin: str) -> list[dict[str, Any]]:
        """Turns of a plugin that have feedback, oldest first, each with its feedback list (oldest first)."""
        turns = list(self._query(
            "SELECT id, text, label, fallback_reason FROM turns WHERE plugin = ? AND picked_from IS NULL AND id IN "
            "(SELECT turn_id FROM feedback) ORDER BY id", [plugin]))  # a "2" that picked a label teaches nothing
        feedback: dict[int, list[dict[str, Any]]] = {}
        for f in self._query("SELECT f.id, f.turn_id, f.kind, f.label, f.note FROM feedback f JOIN turns t ON t.id = f.turn_id "
                             "WHERE t.plugin = ? ORDER BY f.id", [plugin]):
            feedback.setdefault(f["turn_id"], []).append(f)
        return [{**t, "feedback": feedback.get(t["id"], [])} for t in turns]

    def taught_labels(self, plugin: str) -> list[str]:
        """Labels people gave the plugin's turns, in the order first given (learned or not yet)."""
        return [r["label"] for r in self._query(
            "SELECT f.label, MIN(f.id) AS first FROM feedback f JOIN turns t ON t.id = f.turn_id "
            "WHERE t.plugin = ? AND f.kind = 'label' AND f.label IS NOT NULL GROUP BY f.label ORDER BY first", [plugin])]

    def log_finetune_run(self, run: dict[str, Any]) -> int:
        """Record a fine-tune run; return its id."""
        unknown = set(run) - set(FINETUNE_COLUMNS)
        if unknown:
            raise StoreError(f"unknown fine-tune run fields {sorted(unknown)}")
        cols = [c for c in FINETUNE_COLUMNS if c in run]

        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute(f"INSERT INTO finetune_runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                               [run[c] for c in cols])
            return int(cur.lastrowid)

        return self._write(write)

    def finetune_runs(self, plugin: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Recent fine-tune runs, newest first."""
        where, args = ("WHERE plugin = ?", [plugin]) if plugin else ("", [])
        return list(self._query(f"SELECT * FROM finetune_runs {where} ORDER BY id DESC LIMIT ?", [*args, int(limit)]))

    def start_replay_run(self, source: str, engine: str, dry_run: bool) -> int:
        """Record that a replay began; return its run id."""

        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute("INSERT INTO replay_runs (started_at, status, source, engine, dry_run) VALUES (?, ?, ?, ?, ?)",
                               (now(), "running", source, engine, int(dry_run)))
            return int(cur.lastrowid)

        return self._write(write)

    def finish_replay_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        """Store a replay's outcome and its summary (JSON)."""
        cols = ["turns", "conversations", "bad_lines", "errors", "expected", "accuracy", "compared", "changed",
                "seconds", "turns_per_s"]
        values = [summary.get(c) for c in cols]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(f"UPDATE replay_runs SET finished_at = ?, status = ?, report = ?, "
                         f"{', '.join(c + ' = ?' for c in cols)} WHERE id = ?",
                         [now(), status, json.dumps(summary, ensure_ascii=False), *values, run_id])

        self._write(write)

    def replay_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Recent replay runs, newest first."""
        return list(self._query("SELECT * FROM replay_runs ORDER BY id DESC LIMIT ?", [int(limit)]))

    def insert(self, table: str, rows: list[dict[str, Any]], ids: bool = False, redacted: bool = False) -> list[int]:
        """Insert rows (all with the same keys) into a table in one transaction; their ids when asked.

        Every text value is redacted first (a plugin's hook may store what the customer wrote), unless the caller
        says it already applied the plugin's `[privacy]` settings (`redacted=True`)."""
        if not rows:
            return []
        if not redacted:
            from agent.text.guard import redact_value

            rows = [{k: redact_value(k, v) for k, v in row.items()} for row in rows]
        cols = list(rows[0])
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"

        def write(conn: sqlite3.Connection) -> list[int]:
            if not ids:
                conn.executemany(sql, ([row[c] for c in cols] for row in rows))
                return []
            return [int(conn.execute(sql, [row[c] for c in cols]).lastrowid) for row in rows]

        return self._write(write)

    def update(self, table: str, row_id: int, values: dict[str, Any], redacted: bool = False) -> None:
        """Set columns of one row (text values redacted, as in `insert`, unless the caller already did)."""
        if not redacted:
            from agent.text.guard import redact_value

            values = {k: redact_value(k, v) for k, v in values.items()}
        sql = f"UPDATE {table} SET {', '.join(c + ' = ?' for c in values)} WHERE id = ?"
        self._write(lambda conn: conn.execute(sql, [*values.values(), row_id]))

    def transaction(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn(conn)` in one write transaction (a kind's read-check-write, such as a state change); its result."""
        return self._write(fn)

    def query(self, sql: str, args: list[Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a read-only query as dicts."""
        return list(self._query(sql, args or []))

    def turn(self, turn_id: int) -> dict[str, Any] | None:
        """One turn with its predictions, hits and feedback, or None; plugins add their own (`describe_turn`)."""
        from agent.plugin.manager import call_kinds

        rows = list(self._query("SELECT * FROM turns WHERE id = ?", [turn_id]))
        if not rows:
            return None
        row = rows[0]
        row["predictions"] = list(self._query("SELECT label, probability FROM predictions WHERE turn_id = ? ORDER BY rank", [turn_id]))
        row["hits"] = list(self._query("SELECT corpus_id AS id, score, text FROM hits WHERE turn_id = ? ORDER BY rank", [turn_id]))
        row["feedback"] = list(self._query("SELECT kind, label, note, created_at FROM feedback WHERE turn_id = ? ORDER BY id", [turn_id]))
        row["timings"] = json.loads(row["timings"] or "{}")
        row["annotations"] = json.loads(row.get("annotations") or "{}")
        row["warnings"] = json.loads(row.get("warnings") or "[]")
        row["extras"] = json.loads(row.get("extras") or "{}")
        row["choices"] = json.loads(row.get("choices") or "[]")
        for _, extra in call_kinds("describe_turn", lambda plugin, exc: None, turn=dict(row), store=self):
            row.update({k: v for k, v in extra.items() if k not in row})  # a plugin adds keys, never replaces the log's
        return row

    def last_turn(self, conversation_id: str) -> dict[str, Any] | None:
        """The newest turn of a conversation (id, plugin, choices), or None."""
        rows = list(self._query("SELECT id, plugin, choices FROM turns WHERE conversation_id = ? ORDER BY id DESC LIMIT 1",
                                [conversation_id]))
        return rows[0] if rows else None

    def turns(self, query: str | None = None, conversation: str | None = None, limit: int | None = 50) -> list[dict[str, Any]]:
        """Recent turns, newest first; `query` is full-text search, `conversation` filters."""
        where, args = [], []
        if query:
            where.append("id IN (SELECT rowid FROM turns_fts WHERE turns_fts MATCH ?)")
            args.append(_fts_query(query))
        if conversation:
            where.append("conversation_id = ?")
            args.append(conversation)
        sql = "SELECT * FROM turns" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id DESC"
        if limit:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [{**r, "timings": json.loads(r["timings"] or "{}")} for r in self._query(sql, args)]

    def export(self) -> Iterator[dict[str, Any]]:
        """Every turn in conversation order, with predictions, hits and feedback (for JSONL export)."""
        ids = [r["id"] for r in self._query("SELECT id FROM turns ORDER BY conversation_id, id", [])]
        for turn_id in ids:
            yield self.turn(turn_id)  # type: ignore[misc]

    def _query(self, sql: str, args: list[Any]) -> Iterator[dict[str, Any]]:
        """Rows as dicts; damaged-file errors become StoreError."""
        try:
            with self._lock:
                rows = list(self.db.query(sql, args))
        except sqlite3.DatabaseError as exc:
            raise _explain(self.path, exc) from exc
        yield from rows

    def compact(self) -> None:
        """Rebuild the full-text index, fold the write-ahead log into the file and vacuum it: no old text stays on disk."""
        self._write(lambda conn: conn.execute("INSERT INTO turns_fts (turns_fts) VALUES ('rebuild')"))
        with self._lock:
            try:
                _retry(self.path, lambda: self.db.execute("VACUUM").fetchall())
                busy = _retry(self.path, lambda: self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())[0]
            except sqlite3.DatabaseError as exc:
                raise _explain(self.path, exc) from exc
        if busy:  # another connection still reads an older snapshot: its pages stay in the write-ahead log
            raise StoreError(f"{self.path} is open in another program (a chat, a server, a replay), so the write-ahead log "
                             "still holds the old text; close it and run the command again")

    def integrity(self) -> str:
        """SQLite's own check of the file: 'ok', or what is wrong."""
        return "; ".join(r[0] for r in self.db.execute("PRAGMA integrity_check").fetchall())

    def close(self) -> None:
        """Close the connection."""
        self.db.conn.close()


def _insert_turn(conn: sqlite3.Connection, stamp: str, turn: dict[str, Any], predictions: list[tuple[str, float]],
                 hits: list[dict[str, Any]]) -> int:
    """Insert one turn with its predictions and hits (inside the caller's transaction)."""
    conn.execute("INSERT OR IGNORE INTO conversations (id, started_at, last_at) VALUES (?, ?, ?)",
                 (turn["conversation_id"], stamp, stamp))
    conn.execute("UPDATE conversations SET last_at = ? WHERE id = ?", (stamp, turn["conversation_id"]))
    cols = ["conversation_id", "created_at", *TURN_COLUMNS]
    row = {**turn, "created_at": stamp, "timings": json.dumps(turn.get("timings", {}))}
    cur = conn.execute(f"INSERT INTO turns ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                       [row.get(c) for c in cols])
    turn_id = int(cur.lastrowid)
    conn.executemany("INSERT INTO predictions (turn_id, rank, label, probability) VALUES (?, ?, ?, ?)",
                     [(turn_id, i, label, p) for i, (label, p) in enumerate(predictions)])
    conn.executemany("INSERT INTO hits (turn_id, rank, corpus_id, score, text) VALUES (?, ?, ?, ?, ?)",
                     [(turn_id, i, h["id"], h["score"], h["text"]) for i, h in enumerate(hits)])
    return turn_id


TURN_COLUMNS = ["text", "reply", "plugin", "label", "confidence", "route_confidence", "fallback_reason",
                "latency_ms", "timings", "redactions", "annotations", "answer_id", "forced", "warnings", "extras", "user_id",
                "choices", "picked_from"]

FINETUNE_COLUMNS = ["plugin", "version", "started_at", "finished_at", "status", "mode", "device", "epochs", "seconds",
                    "train_rows", "holdout_rows", "accuracy", "current_accuracy", "macro_f1", "current_version", "report",
                    "trigger"]


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether an error means another connection holds the lock (worth waiting for)."""
    msg = str(exc)
    return "locked" in msg or "busy" in msg


def _retry(path: Path, fn: Callable[[], Any]) -> Any:
    """Call fn, retrying with jittered back-off while the database is locked, for up to BUSY_SECONDS."""
    deadline, delay = time.monotonic() + BUSY_SECONDS, 0.01
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() + delay > deadline:
                raise _explain(path, exc) from exc
        except sqlite3.DatabaseError as exc:
            raise _explain(path, exc) from exc
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 0.5)


def _fts_query(text: str) -> str:
    """Quote each word so user text is never read as FTS syntax."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"' for w in words) or '""'


def _explain(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    """Turn a sqlite error into a message that says what to do."""
    msg = str(exc)
    if "locked" in msg or "busy" in msg:
        return StoreError(f"{path} is locked by another process (waited {BUSY_SECONDS:g} s); "
                          "try again, or close the other program that holds it")
    if "not a database" in msg or "malformed" in msg or "corrupt" in msg:
        return StoreError(f"{path} is damaged ({msg}); move it aside (mv {path} {path}.bad) and run again to start a new log")
    return StoreError(f"{path}: database error: {msg}")
