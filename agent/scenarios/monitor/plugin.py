"""The sentiment monitor kind, a default plugin: an observer with [topics] / [monitor] tables files each
turn under a topic, flags strongly negative customers, and scores feeds with `agent monitor`.

It contributes the two manifest tables, the monitor's database tables (runs, feed items, windows,
alerts), the `agent monitor` command, the chat app's side panel and `/monitor` command. The core
knows none of this.
"""

from __future__ import annotations

from typing import Any

from agent.plugin.hookspecs import hookimpl

NAMESPACE = "monitor"


@hookimpl
def register_tables(register: Any) -> None:
    """[topics] name = description, and [monitor]: windows, baseline, spike test, chat flags."""
    from agent.scenarios.monitor.config import parse_monitor, parse_topics

    register("topics", lambda table, manifest: parse_topics(table))
    register("monitor", lambda table, manifest: parse_monitor(table, manifest.labels, parse_topics(table)))


@hookimpl
def register_migrations(register: Any) -> None:
    """The monitor's runs, scored feed items, judged windows and alerts."""
    from agent.scenarios.monitor.tables import m007_monitor

    register(NAMESPACE, m007_monitor, legacy="m007_monitor")


@hookimpl
def register_commands(cli: Any) -> None:
    """`agent monitor`."""
    from agent.scenarios.monitor.cli import monitor

    cli.add_command(monitor)


@hookimpl
def register_routes(register: Any) -> None:
    """POST /v1/monitor/items, GET /v1/monitor/report, GET /v1/alerts."""
    from agent.scenarios.monitor.routes import router

    register(router)


@hookimpl
def register_chat_commands(register: Any) -> None:
    """/monitor FEED [--follow], /monitor stop."""
    from agent.scenarios.monitor.tui import monitor_command

    register("/monitor", "run the sentiment monitor over a feed in the background (/monitor FEED [--follow], /monitor stop)",
             monitor_command)


@hookimpl
def tui_panels() -> list[Any]:
    """The side panel's plot of the watched share per topic, and the latest alerts."""
    from agent.scenarios.monitor.tui import SentimentPanel

    return [SentimentPanel]


@hookimpl
def open_plugin(manifest: Any, runtime: Any, encoder: Any, notify: Any) -> Any:
    """Topic centroids (built on first use) of an observer with [topics] or [monitor]."""
    if manifest.role != "observer" or not (manifest.tables.get("topics") or manifest.tables.get("monitor")):
        return None
    return _Topics(manifest, encoder, runtime.index_dir, notify)


class _Topics:
    """An observer's topic index in the shared encoder's space, built once; None when it cannot be."""

    def __init__(self, manifest: Any, encoder: Any, index_dir: Any, notify: Any) -> None:
        self.manifest, self.encoder, self.index_dir, self.notify = manifest, encoder, index_dir, notify
        self._index: Any = ...

    def index(self) -> Any:
        """The TopicIndex, or None without [topics] (or after an error, reported once)."""
        from agent.errors import AgentError
        from agent.scenarios.monitor.scorer import chat_topics

        if self._index is ...:
            try:
                self._index = chat_topics(self.manifest, self.encoder, self.index_dir, self.notify)
            except AgentError as exc:  # e.g. an example row naming an undeclared topic: reported once, turns go on
                self._index = None
                if self.notify:
                    self.notify(f"plugin {self.manifest.name}: topics are off: {exc}")
        return self._index


@hookimpl
def observe(turns: list[Any], plugin: str, runtime: Any) -> None:
    """Each turn's topic (among its answering plugin's domain, if mapped), and a flag (with the hand-off offered)
    when the watched label is strong."""
    from agent.scenarios.monitor.chat import flag, with_handoff

    state = runtime.extensions.get(__name__)
    if state is None:
        return
    topics = state.index()
    if topics is not None:
        import numpy as np

        from agent.scenarios.monitor.scorer import turn_domains

        domains = turn_domains(runtime.manifest, [t.reply.plugin for t in turns])  # the answering plugin's topics
        for turn, topic in zip(turns, topics.assign(np.concatenate([t.vector for t in turns]), domains)):
            turn.reply.annotations[plugin]["topic"] = topic[0]
    for turn in turns:
        note = turn.reply.annotations[plugin]
        found = flag(runtime.manifest, note)
        if found is None:
            continue
        turn.reply.extras.setdefault(plugin, {}).setdefault("flags", []).append(found)
        note["flag"] = found["flag"]
        if found["offer_human"] and turn.responder is not None and not turn.held:  # a person has it already
            turn.reply.text = with_handoff(turn.reply.text, turn.responder.handoff)


@hookimpl
def format_extras(extras: dict[str, Any]) -> list[Any] | None:
    """A flag as a red mark on the reply's meta line."""
    flags = extras.get("flags")
    if not isinstance(flags, list) or set(extras) != {"flags"}:
        return None
    from rich.markup import escape

    return [("meta", f"[red]⚑ {escape(str(f.get('flag', 'flagged')).replace('_', ' '))}[/]") for f in flags]
