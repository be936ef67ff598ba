"""Agent.reply: the one entry point every front end calls (CLI, chat, replay)."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from agent import guard
from agent.errors import InputError, ModelError, PluginError
from agent.hooks import Hooks
from agent.manifest import Manifest, load_manifest
from agent.plugins import Skipped, discover
from agent.router import Route, parse_use, route
from agent.settings import Settings

if TYPE_CHECKING:
    import numpy as np

    from agent.encoder import Encoder
    from agent.runtime import Hit, PluginRuntime
    from agent.store import Store


@dataclass
class Turn:
    """One incoming message on its way through the agent; the embedding is computed once, here."""

    text: str
    stored_text: str
    redactions: int
    conversation_id: str
    forced: str | None = None
    vector: "np.ndarray | None" = None
    hook_reply: bool = False  # a build_reply hook wrote the reply: it may echo the message, so redact it too
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Reply:
    """What the agent answered, and why."""

    text: str
    plugin: str | None
    label: str | None
    confidence: float | None
    hits: list[dict[str, Any]]
    fallback_reason: str | None
    timings_ms: dict[str, float]
    turn_id: int | None
    conversation_id: str
    route_confidence: float | None = None
    predictions: list[dict[str, Any]] = field(default_factory=list)
    annotations: dict[str, Any] = field(default_factory=dict)  # observers' labels and hook results, by plugin
    warnings: list[str] = field(default_factory=list)  # plugin hooks that failed during this turn

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class Agent:
    """Discovers plugins, encodes each message once, routes, answers, and logs the turn."""

    def __init__(self, settings: Settings | None = None, encoder: "Encoder | None" = None,
                 store: "Store | None" = None, notify: Callable[[str], None] | None = None,
                 device: str = "auto") -> None:
        self.settings = settings or Settings()
        self.notify, self.device = notify, device
        self.manifests, self.skipped = discover(self.settings)
        self.hooks = Hooks(notify)
        self.manifests = [m for m in self.manifests if self._load_hooks(m)]
        self._encoder, self._store = encoder, store
        self._runtimes: dict[str, PluginRuntime] | None = None
        self._observers: dict[str, PluginRuntime] | None = None
        self._forced: dict[str, str] = {}

    def _load_hooks(self, manifest: Manifest) -> bool:
        """Register a plugin's hooks; a plugin whose hooks do not load is skipped with the reason."""
        try:
            self.hooks.load(manifest)
        except PluginError as exc:
            self.skipped.append(Skipped(manifest.folder, str(exc), manifest.name))
            return False
        return True

    # ---- lazily built parts -----------------------------------------------------------------
    @property
    def encoder(self) -> "Encoder":
        """The shared encoder, loaded on first use."""
        if self._encoder is None:
            from agent.encoder import shared_encoder

            self._encoder = shared_encoder(self.device)
        return self._encoder

    @property
    def store(self) -> "Store":
        """The SQLite log, opened on first use."""
        if self._store is None:
            from agent.store import Store

            self._store = Store(self.settings.db_path)
        return self._store

    @property
    def runtimes(self) -> dict[str, "PluginRuntime"]:
        """Loaded responder plugins; one that fails to load is moved to `skipped` with its reason."""
        if self._runtimes is None:
            self._runtimes = self._load_runtimes("responder")
        return self._runtimes

    @property
    def observers(self) -> dict[str, "PluginRuntime"]:
        """Observer plugins with labels: each labels every turn (those with hooks only have no runtime)."""
        if self._observers is None:
            self._observers = self._load_runtimes("observer")
        return self._observers

    def _load_runtimes(self, role: str) -> dict[str, "PluginRuntime"]:
        """Runtimes of the plugins with this role; one that fails to load is moved to `skipped`."""
        out = {}
        for m in self.manifests:
            if m.role != role or role == "observer" and not (m.examples or any(m.labels.values())):
                continue
            try:
                out[m.name] = self.load_runtime(m)
            except (PluginError, ModelError) as exc:
                self.skipped.append(Skipped(m.folder, str(exc), m.name))
        return out

    def refresh(self) -> list[str]:
        """Pick up models promoted or rolled back since the last turn (one stat per plugin); return their names."""
        changed = []
        for name, runtime in {**(self._runtimes or {}), **(self._observers or {})}.items():
            try:
                if runtime.refresh():
                    changed.append(name)
            except (PluginError, ModelError) as exc:
                if self.notify:
                    self.notify(f"{name}: the new model could not be loaded ({exc}); still using {runtime.model_state}")
        return changed

    def load_runtime(self, manifest: Manifest | Path) -> "PluginRuntime":
        """Build the runtime of one plugin (indexes and head built or loaded)."""
        from agent.runtime import PluginRuntime

        if not isinstance(manifest, Manifest):
            manifest = load_manifest(Path(manifest))
        return PluginRuntime(manifest, self.settings.index_root, self.encoder, self.notify)

    # ---- the turn ---------------------------------------------------------------------------
    def reply(self, text: str | bytes, conversation_id: str | None = None, plugin: str | None = None) -> Reply:
        """Answer one message: guard, encode once, route, classify, retrieve, log."""
        runtimes, encoder, _ = self.runtimes, self.encoder, self.observers  # loaded once, outside the turn's timings
        self.refresh()
        start = time.perf_counter()
        turn = self._begin(text, conversation_id, plugin)
        if not turn.text:  # a bare "/use NAME" only switches plugin
            return self._switched(turn)
        t = time.perf_counter()
        turn.vector = encoder.encode([turn.text])
        turn.timings["encode"] = _ms(t)
        t = time.perf_counter()
        chosen = route(turn.vector[0], runtimes, turn.forced)
        turn.timings["route"] = _ms(t)
        reply = self._answer(turn, runtimes[chosen.plugin], chosen)
        t = time.perf_counter()
        self._observe(turn, reply)
        turn.timings["observe"] = _ms(t)
        t = time.perf_counter()
        reply.turn_id = self._log(turn, reply)
        turn.timings["log"] = _ms(t)
        turn.timings["total"] = _ms(start)
        reply.timings_ms = {k: round(v, 3) for k, v in turn.timings.items()}
        return reply

    def _begin(self, text: str | bytes, conversation_id: str | None, plugin: str | None) -> Turn:
        """Clean the text, handle '/use NAME', and start a Turn."""
        cleaned = guard.clean(text, self.settings.max_chars)
        conversation_id = conversation_id or uuid.uuid4().hex[:12]
        use, cleaned = parse_use(cleaned)
        if use is not None:
            self._forced[conversation_id] = self._responder(use)
        stored, count = guard.redact(cleaned)
        forced = self._forced.get(conversation_id) or (self._responder(plugin) if plugin else None)
        return Turn(cleaned, stored, count, conversation_id, forced)

    def _responder(self, name: str) -> str:
        """A loaded responder's name, or an error that says why it is not available."""
        if name in self.runtimes:
            return name
        why = [s.reason for s in self.skipped if name in (s.name, s.path.name)]
        if why:
            raise InputError(f"plugin '{name}' is not available: {why[0]}")
        raise InputError(f"no responder plugin named '{name}'; choose one of {sorted(self.runtimes)} (see `agent plugins`)")

    def _switched(self, turn: Turn) -> Reply:
        """The reply to a bare '/use NAME'."""
        name = self._forced[turn.conversation_id]
        return Reply(f"Now using {name}.", name, None, None, [], None, {}, None, turn.conversation_id)

    def _answer(self, turn: Turn, runtime: "PluginRuntime", chosen: Route) -> Reply:
        """Classify with the shared embedding, then answer from the corpus or fall back."""
        assert turn.vector is not None
        t = time.perf_counter()
        decision = runtime.decide(runtime.classify(turn.vector, [turn.text])[0], chosen.similarity)
        turn.timings["classify"] = _ms(t)
        t = time.perf_counter()
        hits, best = runtime.retrieve(turn.vector[0], decision.label)
        turn.timings["retrieve"] = _ms(t)
        text = self._answer_text(runtime, decision.label, best, decision.fallback_reason)
        hit_dicts = [h.to_dict() for h in hits]
        custom = self.hooks.call_one(
            runtime.name, "build_reply", plugin=runtime.name, text=turn.text, label=decision.label,
            confidence=decision.confidence, hits=[dict(h) for h in hit_dicts], fallback_reason=decision.fallback_reason,
            answer=text, conversation_id=turn.conversation_id)
        if custom is not None:
            text, turn.hook_reply = str(custom), True
        return Reply(
            warnings=[str(f) for f in self.hooks.drain()],
            text=text, plugin=runtime.name, label=decision.label, confidence=round(decision.confidence, 4),
            hits=hit_dicts, fallback_reason=decision.fallback_reason, timings_ms={},
            turn_id=None, conversation_id=turn.conversation_id, route_confidence=chosen.confidence,
            predictions=[{"label": lab, "probability": round(p, 4)} for lab, p in decision.top],
        )

    def _observe(self, turn: Turn, reply: Reply) -> None:
        """Observers label the turn with the shared embedding; `observe_turn` hooks add their results."""
        assert turn.vector is not None
        for name, runtime in self.observers.items():
            try:
                probs = runtime.classify(turn.vector, [turn.text])[0]
            except ModelError as exc:
                reply.warnings.append(f"plugin {name}: {exc}")
                continue
            top = int(probs.argmax())
            reply.annotations[name] = {"label": runtime.labels[top], "confidence": round(float(probs[top]), 4)}
        for name in self.hooks.names("observe_turn"):
            seen = replace(reply, annotations=dict(reply.annotations), warnings=list(reply.warnings))  # hooks read a copy
            result = self.hooks.call_one(name, "observe_turn", plugin=name, text=turn.text, reply=seen,
                                         annotation=reply.annotations.get(name))
            if isinstance(result, dict):
                reply.annotations[name] = {**reply.annotations.get(name, {}), **result}
            elif result is not None:
                reply.warnings.append(f"plugin {name}: observe_turn returned {type(result).__name__}, not a dict; ignored")
        reply.warnings += [str(f) for f in self.hooks.drain()]

    @staticmethod
    def _answer_text(runtime: "PluginRuntime", label: str, best: "Hit | None", reason: str | None) -> str:
        """The answer for the label, or the plugin's fallback and hand-off."""
        m = runtime.manifest
        if reason is not None:
            return f"{m.fallback_message} {m.handoff}"
        if best is not None:
            return best.answer
        return f"I understand this is about: {runtime.describe(label)}."

    def _log(self, turn: Turn, reply: Reply) -> int:
        """Store the turn (with redacted text), its predictions and hits."""
        record = {
            "conversation_id": turn.conversation_id, "text": turn.stored_text,
            "reply": guard.redact(reply.text)[0] if turn.hook_reply else reply.text,
            "plugin": reply.plugin, "label": reply.label, "confidence": reply.confidence,
            "route_confidence": reply.route_confidence, "fallback_reason": reply.fallback_reason,
            "latency_ms": sum(v for k, v in turn.timings.items() if k != "log"), "timings": turn.timings,
            "redactions": turn.redactions,
            "annotations": json.dumps(guard.redact_tree(reply.annotations), ensure_ascii=False) if reply.annotations else None,
        }
        preds = [(p["label"], p["probability"]) for p in reply.predictions]
        return self.store.log_turn(record, preds, reply.hits)

    # ---- feedback ---------------------------------------------------------------------------
    def feedback(self, turn_id: int, label: str | None = None, rating: str | None = None, note: str | None = None,
                 new_label: bool = False) -> int:
        """Store a person's correction (`label`) or rating ('good' / 'bad') of a logged turn.

        A label the plugin does not know yet is refused unless `new_label` is set; `agent finetune`
        then learns it.
        """
        turn = self.store.turn(turn_id)
        if turn is None:
            raise InputError(f"no turn {turn_id} in {self.settings.db_path}; list turns with: agent logs")
        if label is not None:
            label = label.strip()
            known = self._labels_of(turn["plugin"])
            if new_label and not _LABEL.fullmatch(label):
                raise InputError(f"'{label}' cannot be a label: use letters, digits, '_', '-' or '.', up to 64 characters")
            if known and label not in known and not new_label:
                raise InputError(f"'{label}' is not a label of plugin {turn['plugin']}; choose one of: {', '.join(known)}"
                                 " (or teach a new one with --new-label)")
            return self.store.add_feedback(turn_id, "label", label, note)
        if rating not in ("good", "bad"):
            raise InputError("give --label LABEL, --good or --bad")
        return self.store.add_feedback(turn_id, rating, None, note)

    def _labels_of(self, plugin: str | None) -> list[str]:
        """Declared labels of a discovered plugin and those its current model learned (no model load)."""
        from agent.versions import Versions

        for m in self.manifests:
            if m.name == plugin:
                return list(dict.fromkeys([*m.labels, *Versions(m.folder).current_labels()]))
        return []


_LABEL = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _ms(since: float) -> float:
    """Milliseconds since a perf_counter reading."""
    return (time.perf_counter() - since) * 1000.0
