"""Agent.reply: the one entry point every front end calls (CLI, chat, replay, HTTP)."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from agent.errors import AgentError, InputError, ModelError, PluginError
from agent.plugin.discovery import Skipped, discover
from agent.plugin.hooks import Hooks
from agent.plugin.manifest import Manifest, load_manifest
from agent.reply import offers as two
from agent.reply.conversations import Conversations, Offered
from agent.reply.router import Route, parse_use, route_many
from agent.settings import Settings
from agent.text import guard

if TYPE_CHECKING:
    import numpy as np

    from agent.models.encoder import Encoder
    from agent.plugin.loaded import Hit, PluginRuntime
    from agent.store import Store


@dataclass
class Message:
    """One message to answer: its text, its conversation, and a plugin to force (or None to route)."""

    text: str | bytes
    conversation_id: str | None = None
    plugin: str | None = None
    user: str | None = None  # who wrote it (profiles, item feedback); the conversation id when None


@dataclass
class Turn:
    """One incoming message on its way through the agent; the embedding is computed once, here."""

    text: str
    conversation_id: str
    forced: str | None = None
    user: str = ""
    log: bool = True  # False in a dry run: nothing of this turn is stored, item feedback included
    live: bool = True  # False in a replay: no person is waiting for this answer
    vector: "np.ndarray | None" = None
    hook_reply: bool = False  # a build_reply hook wrote the reply: it may echo the message, so redact it too
    responder: Manifest | None = None  # the manifest of the plugin that answered
    picked: "two.Picked | None" = None  # the message picks one of the labels the last turn offered
    held: bool = False  # an `intercept` hook kept the turn from the agent (a person has the conversation)
    timings: dict[str, float] = field(default_factory=dict)
    reply: "Reply" = None  # type: ignore[assignment]  # set once answered


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
    answer_id: str | None = None  # the corpus entry the answer came from, when it came from one
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)  # what plugins added to the reply, by plugin
    choices: list[dict[str, Any]] = field(default_factory=list)  # the two labels offered to pick from (agent.reply.offers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def extra(self, key: str) -> list[Any]:
        """The lists every plugin put under `key` in its extras, joined in plugin order."""
        return [x for extras in self.extras.values() for x in (extras.get(key) or [])]


@dataclass
class TurnContext:
    """What a `respond` hook knows of the turn it may answer (see agent.plugin.hookspecs.respond)."""

    plugin: str
    manifest: Manifest
    runtime: "PluginRuntime"
    state: dict[str, Any]  # runtime.extensions: each kind's state for this plugin, by kind
    text: str
    embedding: "np.ndarray"
    conversation_id: str
    user: str
    label: str
    confidence: float
    fallback_reason: str | None
    hits: list["Hit"]
    best: "Hit | None"
    answer: str
    store: "Store"
    log: bool
    live: bool = True  # False in a replay: no person waits for the answer (no handoff, no alert to people)


@dataclass
class Draft:
    """A turn's answer while it is built: text, label, fallback, extras, hits, the labels offered, the answer's id."""

    text: str
    label: str
    fallback: str | None
    extras: dict[str, Any]
    hits: list[dict[str, Any]]
    offered: list[Any]
    answer_id: str | None


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
        self._encoder, self._store, self._base = None, store, encoder  # `encoder` stands for the packaged one
        self._encoder_stamp = self._encoder_versions().stamp()
        self._skipped_before_runtimes = len(self.skipped)  # later entries come from loading runtimes (redone on a rebuild)
        self._runtimes: dict[str, PluginRuntime] | None = None
        self._observers: dict[str, PluginRuntime] | None = None
        self.conversations = Conversations()

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
            self._encoder = self._home_encoder()
        return self._encoder

    def _home_encoder(self) -> "Encoder":
        """The home's shared encoder; when it cannot be loaded, the packaged one (and a note saying why)."""
        from agent.models.home_encoder import home_encoder

        try:
            return home_encoder(self.settings, self.device, base=self._base)
        except ModelError as exc:
            if self.notify:
                self.notify(f"{exc}; using the packaged encoder meanwhile")
            from agent.models.encoder import shared_encoder

            return self._base or shared_encoder(self.device)

    def _encoder_versions(self) -> Any:
        """The versions of the home's shared encoder."""
        from agent.models.home_encoder import encoder_versions

        return encoder_versions(self.settings.home)

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
        if self._encoder_moved():
            return sorted({**(self._runtimes or {}), **(self._observers or {})})
        changed = []
        for name, runtime in {**(self._runtimes or {}), **(self._observers or {})}.items():
            try:
                if runtime.refresh():
                    changed.append(name)
            except (PluginError, ModelError) as exc:
                if self.notify:
                    self.notify(f"{name}: the new model could not be loaded ({exc}); still using {runtime.model_state}")
        return changed

    def _encoder_moved(self) -> bool:
        """When the home's shared encoder changed: load the new one and rebuild every plugin with it."""
        stamp = self._encoder_versions().stamp()
        if stamp == self._encoder_stamp:
            return False
        self._encoder_stamp = stamp  # a version that fails to load is reported once, not retried every turn
        encoder = self._home_encoder()
        if encoder is self._encoder:
            return False
        if self.notify:
            self.notify(f"now using shared encoder {self._encoder_versions().current() or '(packaged)'}; rebuilding the plugins' indexes")
        self._encoder, self._runtimes, self._observers = encoder, None, None
        del self.skipped[self._skipped_before_runtimes:]
        if encoder.tag and self._base is None:  # turns no longer use the packaged encoder: let it go
            from agent.models.encoder import forget_shared_encoder

            forget_shared_encoder()
        return True

    def load_runtime(self, manifest: Manifest | Path) -> "PluginRuntime":
        """Build the runtime of one plugin (indexes and head built or loaded)."""
        from agent.plugin.loaded import PluginRuntime

        if not isinstance(manifest, Manifest):
            manifest = load_manifest(Path(manifest))
        return PluginRuntime(manifest, self.settings.index_root, self.encoder, self.notify, self.settings.models_root)

    # ---- the turn ---------------------------------------------------------------------------
    def reply(self, text: str | bytes, conversation_id: str | None = None, plugin: str | None = None,
              user: str | None = None) -> Reply:
        """Answer one message: guard, encode once, route, classify, retrieve, log."""
        result = self.replies([Message(text, conversation_id, plugin, user)])[0]
        if isinstance(result, AgentError):
            raise result
        return result

    def replies(self, messages: Sequence["Message"], log: bool = True, picks: bool = True) -> list["Reply | AgentError"]:
        """Answer messages in order as one batch (one encoder call for all); a bad message yields its error.

        Turns of one conversation see each other's `/use`; with `log=False` nothing is stored. With
        `picks` off (a replay), "2" after a turn that offered two labels is a message like any other.
        Batched stages (encode, route, classify) are timed for the batch and shared out evenly.
        """
        self.refresh()  # first: a new shared encoder rebuilds the plugins this batch then uses
        runtimes, encoder, _ = self.runtimes, self.encoder, self.observers  # loaded once, outside the turn's timings
        start = time.perf_counter()
        seen: set[str] | None = set() if picks else None  # only a conversation's first message in a batch may pick
        out: list[Reply | AgentError | Turn] = [self._begin_or_error(m, seen) for m in messages]
        turns = [t for t in out if isinstance(t, Turn)]
        if turns:
            self._run(turns, runtimes, encoder, log, picks)
        self._close_switched(out)
        total = _ms(start) / max(len(out), 1)
        for item in out:
            if isinstance(item, Turn):
                item.reply.timings_ms = {**{k: round(v, 3) for k, v in item.timings.items()}, "total": round(total, 3)}
        return [item.reply if isinstance(item, Turn) else item for item in out]  # type: ignore[misc]

    def _begin_or_error(self, message: "Message", seen: set[str] | None) -> "Turn | Reply | AgentError":
        """A Turn to answer, the reply to a bare '/use NAME', or the message's error."""
        try:
            turn = self._begin(message.text, message.conversation_id, message.plugin, seen)
            turn.user = guard.conversation_id(message.user) or turn.conversation_id
        except AgentError as exc:
            return exc
        return turn if turn.text else self._switched(turn)

    def _close_switched(self, out: list[Any]) -> None:
        """A bare '/use NAME' after a conversation's last answered turn in the batch closes that turn's offer."""
        switched: dict[str, bool] = {}  # by conversation: was its last message in the batch a bare '/use'?
        for item in out:
            if isinstance(item, (Turn, Reply)):
                switched[item.conversation_id] = isinstance(item, Reply)
        for conversation in (c for c, yes in switched.items() if yes):
            self.conversations.close_offer(conversation)

    def _run(self, turns: list[Turn], runtimes: dict[str, "PluginRuntime"], encoder: "Encoder", log: bool,
             picks: bool = True) -> None:
        """Encode all turns at once, route and classify them in batches, then answer, observe and log each."""
        share = 1.0 / len(turns)
        t = time.perf_counter()
        vectors = encoder.encode([turn.text for turn in turns])
        _spread(turns, "encode", _ms(t) * share)
        for i, turn in enumerate(turns):
            turn.vector = vectors[i : i + 1]
        t = time.perf_counter()
        routes = route_many(vectors, runtimes, [turn.forced for turn in turns])
        _spread(turns, "route", _ms(t) * share)
        t = time.perf_counter()
        probs = self._classify(turns, routes, runtimes)
        _spread(turns, "classify", _ms(t) * share)
        for turn, chosen, p in zip(turns, routes, probs):
            turn.log, turn.live = log, picks
            turn.reply = self._answer(turn, runtimes[chosen.plugin], chosen, p)
        t = time.perf_counter()
        self._observe(turns)
        _spread(turns, "observe", _ms(t) * share)
        t = time.perf_counter()
        ids = self._log(turns) if log else [None] * len(turns)
        _spread(turns, "log", _ms(t) * share)
        for turn, turn_id in zip(turns, ids):
            turn.reply.turn_id = turn_id
        if log:
            self._learn_picks(turns)
        if picks:  # a replay leaves the offers of live conversations alone
            self.conversations.remember([turn.reply for turn in turns])

    @staticmethod
    def _classify(turns: list[Turn], routes: list[Route], runtimes: dict[str, "PluginRuntime"]) -> list["np.ndarray"]:
        """Each turn's label probabilities from its chosen plugin, one classifier call per plugin."""
        import numpy as np

        out: list[Any] = [None] * len(turns)
        for name in dict.fromkeys(r.plugin for r in routes):
            idx = [i for i, r in enumerate(routes) if r.plugin == name]
            vectors = np.concatenate([turns[i].vector for i in idx])  # type: ignore[misc]
            for i, p in zip(idx, runtimes[name].classify(vectors, [turns[i].text for i in idx])):
                out[i] = p
        return out

    def force(self, conversation_id: str, plugin: str | None, close: bool = True) -> bool:
        """Route a conversation to this responder from now on, as '/use NAME' does, or (None) back to routing;
        False if it is not loaded. A switch closes an open offer of two labels (a replay's `close=False` does not)."""
        if plugin is not None and plugin not in self.runtimes:
            return False
        self.conversations.use(conversation_id, plugin, close)
        return True

    def responder_names(self) -> list[str]:
        """Names of the discovered responder plugins (no model is loaded)."""
        return [m.name for m in self.manifests if m.role == "responder"]

    def _begin(self, text: str | bytes, conversation_id: str | None, plugin: str | None, seen: set[str] | None = None) -> Turn:
        """Clean the text, handle '/use NAME', and start a Turn."""
        cleaned = guard.clean(text, self.settings.max_chars)
        given = guard.conversation_id(conversation_id)
        conversation_id = given or uuid.uuid4().hex[:12]
        use, cleaned = parse_use(cleaned)
        if use is not None:
            self.conversations.use(conversation_id, self.responder(use))  # a switch closes an open offer
        may_pick = use is None and given is not None and seen is not None and conversation_id not in seen
        if seen is not None:
            seen.add(conversation_id)
        asked = self.responder(plugin) if plugin else None
        picked = self._picked(cleaned, conversation_id, asked) if may_pick else None
        forced = self.conversations.forced(conversation_id) or asked
        return Turn(cleaned, conversation_id, picked.plugin if picked else forced, picked=picked)

    def _picked(self, text: str, conversation_id: str, plugin: str | None = None) -> "two.Picked | None":
        """The label this message picks from those the conversation's last turn offered, if it picks one."""
        if not two.might_pick(text):
            return None
        offer = self.conversations.offer(conversation_id, lambda: self._logged_offer(conversation_id))
        if offer is None or offer[1] not in self.runtimes or plugin not in (None, offer[1]):
            return None  # no offer, its plugin is gone, or the message is sent to another plugin
        choice = two.pick(text, offer[2])
        if choice is None or choice.label not in self.runtimes[offer[1]].labels:
            return None  # not a pick, or a label the plugin has lost since
        return two.Picked(offer[0], offer[1], choice)

    def _logged_offer(self, conversation_id: str) -> "Offered | None":
        """The offer the conversation's last logged turn holds, if any."""
        last = self.store.last_turn(conversation_id) if self.settings.db_path.exists() else None
        return (last["id"], last["plugin"], two.loads(last["choices"])) if last and last.get("choices") else None

    def _learn_picks(self, turns: list[Turn]) -> None:
        """A person's pick becomes the label of the turn that offered it (`agent finetune` learns it)."""
        for turn in turns:
            picked = turn.picked
            if picked is not None and picked.turn_id is not None and turn.reply.turn_id is not None and not turn.held:
                self.store.add_feedback(picked.turn_id, "label", picked.choice.label, two.NOTE)

    def responder(self, name: str) -> str:
        """A loaded responder's name, or an error that says why it is not available."""
        declared = [m.name for m in self.manifests if m.role == "responder"]
        if name in declared and name in self.runtimes:  # an unknown name loads no model before it is refused
            return name
        why = [s.reason for s in self.skipped if name in (s.name, s.path.name)]
        if why:
            raise InputError(f"plugin '{name}' is not available: {why[0]}")
        names = sorted(self._runtimes) if self._runtimes is not None else sorted(declared)
        raise InputError(f"no responder plugin named '{name}'; choose one of {', '.join(names)} (see `agent plugins`)")

    def _switched(self, turn: Turn) -> Reply:
        """The reply to a bare '/use NAME'."""
        name = self.conversations.forced(turn.conversation_id)
        return Reply(f"Now using {name}.", name, None, None, [], None, {}, None, turn.conversation_id)

    def _answer(self, turn: Turn, runtime: "PluginRuntime", chosen: Route, probs: "np.ndarray") -> Reply:
        """Decide on the label, offer a close second, let the plugin's kind and hooks answer, build the Reply."""
        decision = self._decide(turn, runtime, chosen, probs)
        t = time.perf_counter()
        kept, added = self._intercept(turn, runtime, decision)
        if kept is not None:
            turn.held = True
            turn.timings["respond"] = _ms(t)
            turn.responder = runtime.manifest
            return self._held(turn, runtime, chosen, decision, kept, added)
        hits, best = self._retrieve(turn, runtime, decision.label)
        mode = two.offer(decision, runtime.thresholds) if turn.picked is None else two.Offer.NONE
        offered = self._choices(turn, runtime, decision, best) if mode is not two.Offer.NONE else []
        turn.timings["retrieve"] = _ms(t)
        turn.responder = runtime.manifest
        t = time.perf_counter()
        draft = self._draft(turn, runtime, decision, hits, best, mode, offered)
        turn.timings["respond"] = _ms(t)
        self._build_reply(turn, runtime, decision, draft)
        for key, value in added.items():
            draft.extras.setdefault(key, value)
        return Reply(
            extras=draft.extras, warnings=[str(f) for f in self.hooks.drain()],
            text=draft.text, plugin=runtime.name, label=draft.label, confidence=round(decision.confidence, 4),
            hits=draft.hits, fallback_reason=draft.fallback, timings_ms={},
            turn_id=None, conversation_id=turn.conversation_id, route_confidence=chosen.confidence,
            predictions=[{"label": lab, "probability": round(p, 4)} for lab, p in decision.top],
            answer_id=draft.answer_id, choices=[c.to_dict() for c in draft.offered],
        )

    def _intercept(self, turn: Turn, runtime: "PluginRuntime", decision: Any) -> tuple[str | None, dict[str, Any]]:
        """What the `intercept` hooks say before anyone answers: the text to send instead (or None), and extras."""
        from agent.plugin.manager import call_kinds

        assert turn.vector is not None
        ctx = TurnContext(runtime.name, runtime.manifest, runtime, runtime.extensions, turn.text, turn.vector[0],
                          turn.conversation_id, turn.user, decision.label, decision.confidence, decision.fallback_reason,
                          [], None, "", self.store, turn.log, turn.live)
        text, extras = None, {}
        for _, result in call_kinds("intercept", lambda plugin, exc: self.hooks.report(plugin, "intercept", exc),
                                    guard=self.hooks.guarded, turn=ctx):
            if isinstance(result, dict):
                extras.update(result.get("extras") or {})
                text = str(result["text"]) if text is None and result.get("text") is not None else text
        return text, extras

    def _held(self, turn: Turn, runtime: "PluginRuntime", chosen: Route, decision: Any, text: str,
              extras: dict[str, Any]) -> Reply:
        """The reply to a turn an `intercept` hook kept from the agent: its text, the decision, no hits or offer."""
        return Reply(text, runtime.name, decision.label, round(decision.confidence, 4), [], decision.fallback_reason, {}, None,
                     turn.conversation_id, chosen.confidence,
                     [{"label": lab, "probability": round(p, 4)} for lab, p in decision.top],
                     extras=extras, warnings=[str(f) for f in self.hooks.drain()])

    @staticmethod
    def _decide(turn: Turn, runtime: "PluginRuntime", chosen: Route, probs: "np.ndarray") -> Any:
        """The plugin's decision on the label (its thresholds); a pick from an offer decides by itself."""
        t = time.perf_counter()
        decision = runtime.decide(probs, chosen.similarity)
        if turn.picked is not None:
            c = turn.picked.choice
            decision = replace(decision, label=c.label, confidence=c.probability, top=[(c.label, c.probability)],
                               fallback_reason=None)
        turn.timings["classify"] += _ms(t)  # the batched classifier's share, plus deciding on this turn
        return decision

    def _draft(self, turn: Turn, runtime: "PluginRuntime", decision: Any, hits: list["Hit"], best: "Hit | None",
               mode: two.Offer, offered: list[two.Choice]) -> Draft:
        """The answer before the plugin's own `build_reply`: the kind's `respond`, or the agent's default text,
        with the offer of two labels where it still applies."""
        default = two.asking(offered) if mode is two.Offer.ASK else self._answer_text(runtime, decision.label, decision.fallback_reason)
        answered = self._respond(turn, runtime, decision, hits, best, default)
        text = answered.get("text", default)
        if "text" in answered and (mode is two.Offer.ASK or not answered.get("answer_id")):
            offered = []  # a plugin answered in its own way: it shows no choice
        elif mode is two.Offer.ALSO and offered:
            text = two.also(text, offered[1])
        return Draft(text, answered.get("label", decision.label), answered.get("fallback_reason", decision.fallback_reason),
                     {runtime.name: answered["extras"]} if answered.get("extras") else {}, [h.to_dict() for h in hits],
                     offered, answered.get("answer_id"))

    def _build_reply(self, turn: Turn, runtime: "PluginRuntime", decision: Any, draft: Draft) -> None:
        """The responding plugin's own `build_reply` hook, which may reword the draft and add extras."""
        assert turn.vector is not None
        custom = self.hooks.call_one(
            runtime.name, "build_reply", plugin=runtime.name, text=turn.text, label=decision.label,
            confidence=decision.confidence, hits=[dict(h) for h in draft.hits], fallback_reason=decision.fallback_reason,
            answer=draft.text, conversation_id=turn.conversation_id, embedding=turn.vector[0], user=turn.user,
            store=self.store, extras={k: dict(v) for k, v in draft.extras.items()})
        if custom is None:
            return
        custom, hooked = _hook_reply(runtime.name, custom, self.hooks)
        kept = {k: v for k, v in hooked.items() if v not in (None, [], {})}  # an empty list leaves what the kind showed
        if kept:
            draft.extras[runtime.name] = {**draft.extras.get(runtime.name, {}), **kept}
        if custom is not None:
            draft.text, turn.hook_reply, draft.offered, draft.answer_id = custom, True, [], None

    @staticmethod
    def _retrieve(turn: Turn, runtime: "PluginRuntime", label: str) -> tuple[list["Hit"], "Hit | None"]:
        """Corpus hits and the answer for the label; for a pick, the answer the offering turn found for it."""
        assert turn.vector is not None
        answer_id = turn.picked.choice.answer_id if turn.picked is not None else None
        entry = runtime.entry(answer_id, turn.vector[0]) if answer_id else None
        if entry is not None:
            return [entry], entry
        return runtime.retrieve(turn.vector[0], label)

    @staticmethod
    def _choices(turn: Turn, runtime: "PluginRuntime", decision: Any, best: "Hit | None") -> list[two.Choice]:
        """The top two labels, each with what it is about and the corpus answer it would give."""
        assert turn.vector is not None
        out = []
        for n, (label, p) in enumerate(decision.top[:2]):
            hit = best if n == 0 else runtime.retrieve(turn.vector[0], label)[1]
            answer_id = hit.id if hit is not None and hit.label in (label, None) else None
            out.append(two.Choice(label, round(p, 4), runtime.describe(label), answer_id))
        return out

    def _respond(self, turn: Turn, runtime: "PluginRuntime", decision: Any, hits: list["Hit"], best: "Hit | None",
                 default: str) -> dict[str, Any]:
        """The first `respond` hook's answer (the FAQ answer, items, ...), or {} to keep the agent's default."""
        from agent.plugin.manager import call_kinds

        assert turn.vector is not None
        ctx = TurnContext(runtime.name, runtime.manifest, runtime, runtime.extensions, turn.text, turn.vector[0],
                          turn.conversation_id, turn.user, decision.label, decision.confidence, decision.fallback_reason,
                          hits, best, default, self.store, turn.log, turn.live)
        result = call_kinds("respond", lambda plugin, exc: self.hooks.report(plugin, "respond", exc), first=True,
                            guard=self.hooks.guarded, turn=ctx)
        return result if isinstance(result, dict) else {}

    def _observe(self, turns: list[Turn]) -> None:
        """Observers label the turns with the shared embeddings; `observe` and `observe_turn` hooks add to them."""
        import numpy as np

        from agent.plugin.manager import call_kinds

        vectors = np.concatenate([turn.vector for turn in turns])  # type: ignore[misc]
        for name, runtime in self.observers.items():
            try:
                probs = runtime.classify(vectors, [turn.text for turn in turns])
            except ModelError as exc:
                for turn in turns:
                    turn.reply.warnings.append(f"plugin {name}: {exc}")
                continue
            for turn, p in zip(turns, probs):
                top = int(p.argmax())
                turn.reply.annotations[name] = {"label": runtime.labels[top], "confidence": round(float(p[top]), 4)}
            call_kinds("observe", lambda plugin, exc: self.hooks.report(plugin, "observe", exc), guard=self.hooks.guarded,
                       turns=turns, plugin=name, runtime=runtime)
            failed = [str(f) for f in self.hooks.drain()]
            for turn in turns:
                turn.reply.warnings += failed
        observing = self.hooks.names("observe_turn")
        for turn in turns:
            if observing:
                self._observe_hooks(turn, turn.reply, observing)

    def _observe_hooks(self, turn: Turn, reply: Reply, names: list[str]) -> None:
        """Run the `observe_turn` hooks on one turn; each reads a copy of the reply."""
        for name in names:
            seen = replace(reply, annotations=dict(reply.annotations), warnings=list(reply.warnings))
            result = self.hooks.call_one(name, "observe_turn", plugin=name, text=turn.text, reply=seen,
                                         annotation=reply.annotations.get(name), embedding=turn.vector[0],  # type: ignore[index]
                                         user=turn.user, conversation_id=turn.conversation_id, store=self.store)
            if isinstance(result, dict):
                reply.annotations[name] = {**reply.annotations.get(name, {}), **result}
            elif result is not None:
                reply.warnings.append(f"plugin {name}: observe_turn returned {type(result).__name__}, not a dict; ignored")
        reply.warnings += [str(f) for f in self.hooks.drain()]

    @staticmethod
    def _answer_text(runtime: "PluginRuntime", label: str, reason: str | None) -> str:
        """The plugin's fallback and hand-off, or what the label is about (when no plugin answers better)."""
        m = runtime.manifest
        if reason is not None:
            return f"{m.fallback_message} {m.handoff}"
        return f"I understand this is about: {runtime.describe(label)}."

    def _log(self, turns: list[Turn]) -> list[int]:
        """Store the turns (with redacted text), their predictions and hits, in one transaction."""
        return self.store.log_turns([self._record(turn, turn.reply) for turn in turns])

    def privacy(self, plugin: str | None) -> Any:
        """The `[privacy]` settings of a discovered plugin (None: the defaults, everything redacted)."""
        return next((m.privacy for m in self.manifests if m.name == plugin), None)

    def _record(self, turn: Turn, reply: Reply) -> tuple[dict[str, Any], list[tuple[str, float]], list[dict[str, Any]]]:
        """What the log keeps of a turn: its row (text redacted as its plugin says), top predictions and hits."""
        privacy = self.privacy(reply.plugin)
        stored, redactions = guard.redact_for(turn.text, privacy)
        row = {
            "conversation_id": turn.conversation_id, "text": stored,
            "reply": guard.redact_for(reply.text, privacy)[0] if turn.hook_reply else reply.text,
            "plugin": reply.plugin, "label": reply.label, "confidence": reply.confidence,
            "route_confidence": reply.route_confidence, "fallback_reason": reply.fallback_reason,
            "answer_id": reply.answer_id, "user_id": turn.user,
            "forced": turn.forced if turn.picked is None else self.conversations.forced(turn.conversation_id),
            "picked_from": (turn.picked.turn_id or 0) if turn.picked is not None else None,  # 0: an unlogged offer
            "latency_ms": sum(v for k, v in turn.timings.items() if k != "log"), "timings": turn.timings,
            "redactions": redactions,
            "annotations": json.dumps(guard.redact_tree(reply.annotations), ensure_ascii=False) if reply.annotations else None,
            "warnings": json.dumps(guard.redact_tree(reply.warnings), ensure_ascii=False) if reply.warnings else None,
            "extras": json.dumps(guard.redact_tree(reply.extras), ensure_ascii=False) if reply.extras else None,
            "choices": json.dumps(reply.choices, ensure_ascii=False) if reply.choices else None,
        }
        return row, [(p["label"], p["probability"]) for p in reply.predictions], reply.hits

    # ---- feedback ---------------------------------------------------------------------------
    def feedback(self, turn_id: int, label: str | None = None, rating: str | None = None, note: str | None = None,
                 new_label: bool = False) -> int:
        """Store a person's correction (`label`) or rating ('good', 'bad', 'out_of_scope') of a logged turn.

        A label the plugin does not know yet is refused unless `new_label` is set; `agent finetune`
        then learns it.
        """
        turn = self.store.turn(turn_id)
        if turn is None:
            raise InputError(f"no turn {turn_id} in {self.settings.db_path}; list turns with: agent logs")
        if label is not None:
            label = label.strip()
            known = self.labels_of(turn["plugin"])
            if new_label and not _LABEL.fullmatch(label):
                raise InputError(f"'{label}' cannot be a label: use letters, digits, '_', '-' or '.', up to 64 characters")
            if known and label not in known and not new_label:
                raise InputError(f"'{label}' is not a label of plugin {turn['plugin']}; choose one of: {', '.join(known)}"
                                 " (or teach it as a new label: `agent feedback N --new-label`, `/label --new` in the app)")
            return self.store.add_feedback(turn_id, "label", label, note)
        if rating not in ("good", "bad", "out_of_scope"):
            raise InputError("give --label LABEL, --good, --bad or --out-of-scope")
        return self.store.add_feedback(turn_id, rating, None, note)

    def labels_of(self, plugin: str | None) -> list[str]:
        """Declared labels of a discovered plugin (and of its examples, once loaded), those its current model learned,
        and those people taught it that no fine-tune learned yet (no model load)."""
        from agent.models.versions import versions_for

        for m in self.manifests:
            if m.name == plugin:
                learned = versions_for(self.settings.models_root, m).current_labels()
                loaded = self._runtimes.get(m.name) if self._runtimes is not None else None  # labels of its examples file
                return list(dict.fromkeys([*m.labels, *(loaded.labels if loaded else []), *learned, *self.store.taught_labels(m.name)]))
        return []


_LABEL = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _hook_reply(plugin: str, custom: Any, hooks: Any) -> tuple[str | None, dict[str, Any]]:
    """A build_reply result: a string, or {"text": ..., "extras": {...}} plus keys that plugins register."""
    from agent.plugin import contributions

    if not isinstance(custom, dict):
        return str(custom), {}
    keys = contributions.reply_keys()
    unknown = sorted(str(k) for k in custom if k not in ("text", "extras", *keys))
    if unknown:
        hooks.warn(plugin, "build_reply", f"returned unknown keys {unknown}; use 'text', 'extras' or {sorted(keys)}")
    extras = custom.get("extras") if isinstance(custom.get("extras"), dict) else {}
    if custom.get("extras") is not None and not isinstance(custom.get("extras"), dict):
        hooks.warn(plugin, "build_reply", f"'extras' must be a dict, not {type(custom['extras']).__name__}; ignored")
    extras = {str(k): v for k, v in extras.items()}
    for key, check in keys.items():
        if key in custom:
            value, problems = check(custom[key])
            extras[key] = value
            for problem in problems:
                hooks.warn(plugin, "build_reply", problem)
    text = custom.get("text")
    return (str(text) if text is not None else None), extras


def _spread(turns: list[Turn], stage: str, ms: float) -> None:
    """Give each turn its share of a batched stage's time."""
    for turn in turns:
        turn.timings[stage] = ms


def _ms(since: float) -> float:
    """Milliseconds since a perf_counter reading."""
    return (time.perf_counter() - since) * 1000.0
