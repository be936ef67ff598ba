"""A loaded plugin: its examples and corpus indexes, its classifier, and the decisions it makes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from agent.errors import DataError, ModelError, PluginError
from agent.models.classifier import TextClassifier
from agent.models.finetuned import TunedClassifier
from agent.models.retrieval import VectorIndex, ensure_index
from agent.models.versions import versions_for
from agent.plugin import thresholds
from agent.plugin.data import file_hash, read_rows
from agent.plugin.manifest import Manifest

if TYPE_CHECKING:
    import numpy as np

    from agent.models.encoder import Encoder


@dataclass
class Hit:
    """One retrieved corpus entry."""

    id: str
    score: float
    text: str
    answer: str
    label: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (built by hand: this runs for every hit of every turn)."""
        return {"id": self.id, "score": self.score, "text": self.text, "answer": self.answer, "label": self.label}


@dataclass
class Decision:
    """The label a plugin settled on, or why it would not guess."""

    label: str
    confidence: float
    top: list[tuple[str, float]]
    fallback_reason: str | None


def read_examples(m: Manifest) -> list[tuple[str, str]]:
    """(text, label) pairs: the examples file's rows, then each label's description (alone, they classify zero-shot)."""
    described = [(" ".join(desc.split()), label) for label, desc in m.labels.items() if desc.strip()]
    if not m.examples and not described:
        raise PluginError(f"{m.path}: no [data] examples file and no label descriptions; add one or the other")
    pairs = example_rows(m)
    seen = {text for text, _ in pairs}
    return pairs + [pair for pair in described if pair[0] not in seen]


def example_rows(m: Manifest) -> list[tuple[str, str]]:
    """(text, label) rows of the plugin's examples file ([] when it has none); undeclared labels are refused."""
    if not m.examples:
        return []
    path = m.data_file(m.examples, "data.examples")
    hint = f"rename the columns, or set data.text_column / data.label_column in {m.path}"
    rows = read_rows(path, [m.text_column, m.label_column], hint)
    bad = [(line, row[m.label_column]) for line, row in enumerate(rows, start=2) if m.labels and row[m.label_column] not in m.labels]
    if bad:
        lines = ", ".join(f"{line} ('{label}')" for line, label in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise DataError(f"{path}: label(s) not declared in [labels] of {m.path}, line(s) {lines}; "
                        "add them there or fix the rows")
    return [(r[m.text_column], r[m.label_column]) for r in rows]


def label_list(m: Manifest, examples: list[tuple[str, str]]) -> list[str]:
    """Declared labels, then any others found in the data, in a stable order; at least two."""
    labels = list({**dict.fromkeys(m.labels), **dict.fromkeys(sorted({label for _, label in examples}))})
    if len(labels) < 2:
        raise PluginError(f"{m.path}: a plugin needs at least 2 labels to choose between, found {labels}; "
                          "add examples of another label")
    return labels


class PluginRuntime:
    """Everything a plugin needs at answer time, built once and reused for every turn."""

    def __init__(self, manifest: Manifest, index_root: Path, encoder: "Encoder",
                 notify: Callable[[str], None] | None = None, models_root: Path | None = None) -> None:
        self.manifest, self.encoder, self.notify = manifest, encoder, notify
        self.index_dir = Path(index_root) / manifest.name
        self.models_root = Path(models_root) if models_root is not None else Path(index_root).parent / "models"
        self.home = self.models_root.parent
        self.examples = read_examples(manifest)
        self.labels = label_list(manifest, self.examples)
        self.corpus = self._read_corpus()
        self.examples_index = self._ensure_examples_index()
        self.corpus_index = self._ensure_corpus_index() if self.corpus else None
        self._entry_rows = {i: n for n, i in enumerate(self.corpus_index.ids)} if self.corpus_index else {}  # id -> row
        self.versions = versions_for(self.models_root, manifest)
        self.versions.clean_partials(dead_only=True)  # what a killed fine-tune left behind
        self.thresholds, self._thresholds_stamp = thresholds.apply(manifest.thresholds, self.versions.root), \
            thresholds.stamp(self.versions.root)
        self.learned: VectorIndex | None = None
        self._stamp = self.versions.stamp()
        self.classifier, self.model_state = self._load_classifier()
        self.labels += [lab for lab in self.classifier.labels if lab not in self.labels]
        self._pairsby_label = self._corpus_pairsby_label()
        self.extensions = self._open_extensions()

    def _open_extensions(self) -> dict[str, Any]:
        """Each plugin kind's state for this plugin (`open_plugin` hooks), by the kind's name."""
        from agent.plugin.manager import call_kinds

        def failed(kind: str, exc: Exception) -> None:
            if isinstance(exc, (PluginError, ModelError, DataError)):
                raise exc  # the plugin's own data is at fault: it is skipped with the reason, as for its indexes
            if self.notify:  # a broken kind must not stop this plugin from answering
                self.notify(f"plugin {kind.split(':', 1)[-1]}: hook open_plugin failed for {self.name}: {type(exc).__name__}: {exc}")

        return dict(call_kinds("open_plugin", failed, plugin=self.name, manifest=self.manifest, runtime=self,
                               encoder=self.encoder, notify=self.notify))

    @property
    def name(self) -> str:
        """The plugin's name."""
        return self.manifest.name

    # ---- data -------------------------------------------------------------------------------
    def _read_corpus(self) -> list[dict[str, str]]:
        """The retrieval corpus rows, or [] when the plugin has none."""
        r = self.manifest.retrieval
        if r is None:
            return []
        path = self.manifest.data_file(r.corpus, "retrieval.corpus")
        required = [r.id_column, *r.text_columns, r.answer_column]
        rows = read_rows(path, required, f"rename the columns, or set them in [retrieval] of {self.manifest.path}")
        if r.label_column and rows and r.label_column in rows[0]:
            known = set(self.labels)
            for line, row in enumerate(rows, start=2):
                if row.get(r.label_column) and row[r.label_column] not in known:
                    raise DataError(f"{path}:{line}: label '{row[r.label_column]}' is not one of the plugin's labels; "
                                    "fix the row or add the label to plugin.toml")
        return rows

    # ---- indexes and model ------------------------------------------------------------------
    def _expect(self, *paths: Path, extra: str = "") -> dict[str, str]:
        """What a saved index must match to be used."""
        from agent.text.spelling import READING

        return {"encoder": self.encoder.fingerprint, "data_hash": file_hash(*paths, extra=extra + READING)}

    def _source_paths(self) -> list[Path]:
        """Files that the examples index is built from."""
        m = self.manifest
        return [m.data_file(m.examples, "data.examples") if m.examples else m.path]

    def _ensure_examples_index(self) -> VectorIndex:
        """Embeddings of every example: routing, out-of-scope checks and the head all read them."""
        texts = [t for t, _ in self.examples]
        labels = [label for _, label in self.examples]
        extra = json.dumps([self.manifest.text_column, self.manifest.label_column, self.manifest.labels])
        expect = self._expect(*self._source_paths(), extra=extra)
        build = lambda: (self._encode(texts, "examples"), {"ids": [str(i) for i in range(len(texts))], "labels": labels})
        return ensure_index(self.index_dir, "examples", expect, build, self.notify)

    def _ensure_corpus_index(self) -> VectorIndex:
        """Embeddings of the corpus entries' text columns."""
        r = self.manifest.retrieval
        assert r is not None
        texts = [" ".join(row[c] for c in r.text_columns) for row in self.corpus]
        ids = [row[r.id_column] for row in self.corpus]
        labels = [row.get(r.label_column or "") or None for row in self.corpus]
        columns = json.dumps([r.id_column, r.text_columns, r.answer_column, r.label_column])
        expect = self._expect(self.manifest.data_file(r.corpus, "retrieval.corpus"), extra=columns)
        build = lambda: (self._encode(texts, "corpus entries"), {"ids": ids, "labels": labels})
        return ensure_index(self.index_dir, "corpus", expect, build, self.notify)

    def _encode(self, texts: list[str], what: str) -> "np.ndarray":
        """Batch-encode with a progress note."""
        if self.notify:
            self.notify(f"encoding {len(texts)} {what} of {self.name}")
        return self.encoder.encode(texts)

    def _load_classifier(self) -> tuple[TunedClassifier, str]:
        """The plugin's promoted version, else the head the shared encoder trained for it, else the cached
        frozen-encoder head (fitted if stale)."""
        promoted = self._promoted_model()
        if promoted is not None:
            return promoted
        shared = self._shared_head()
        if shared is not None:
            return shared
        cache = self.index_dir / "head"
        expect_hash = self.examples_index.meta["data_hash"]
        try:
            head = TextClassifier.load(cache)
            if (head.config.get("data_hash"), head.config.get("base_model"), head.labels) == (
                    expect_hash, self.encoder.fingerprint, self.labels):
                return TunedClassifier(head), "head (cached)"
        except ModelError:
            pass
        if self.notify:
            self.notify(f"fitting a head on frozen embeddings for {self.name}")
        head = TextClassifier.fit(self.examples_index.vectors(), self.examples_index.labels, self.labels,
                                  base_model=self.encoder.fingerprint, data_hash=expect_hash)
        head.save(cache)
        return TunedClassifier(head), "head (fitted now)"

    def _promoted_model(self) -> tuple[TunedClassifier, str] | None:
        """The version named by HOME/models/NAME/current, when present and built for this encoder, with the
        turns it learned. A head trained with an earlier shared encoder yields to the current one's head."""
        from agent.models.home_encoder import head_folder

        version = self.versions.current()
        if version is None:
            return None
        folder = self.versions.path(version)
        model = TunedClassifier.load(folder, device=self.encoder.device)
        fits = model.config.get("base_model") == self.encoder.fingerprint
        if model.encoder is not None and self.encoder.tag:  # its own encoder; its probe read the packaged one's embedding
            fits = True
            if model.probe is not None and model.probe.config.get("base_model") != self.encoder.fingerprint:
                model.probe = None
        if not fits:
            if head_folder(self.home, self.name, self.encoder.fingerprint) is not None:
                return None
            if self.encoder.tag or model.mode == "shared":  # made for another shared encoder: a head fitted for this one
                if self.notify:
                    self.notify(f"{self.name}: {version} was made for another encoder; using a head fitted on the "
                                "shared encoder's embeddings until `agent finetune` runs again")
                return None
            raise ModelError(f"{self.versions.pointer}: {version} was trained on encoder {model.config.get('base_model')!r}, "
                             f"not {self.encoder.fingerprint!r}; retrain it or roll back")
        self.learned = self._learned_index(folder)
        return model, f"fine-tuned {version} ({model.mode})"

    def _shared_head(self) -> tuple[TunedClassifier, str] | None:
        """The head the home's shared encoder was trained with for this plugin, if it has one."""
        from agent.models.home_encoder import head_folder

        folder = head_folder(self.home, self.name, self.encoder.fingerprint)
        if folder is None:
            return None
        self.learned = self._learned_index(folder)
        return TunedClassifier(TextClassifier.load(folder)), f"shared encoder {folder.parent.parent.name} (head)"

    def _learned_index(self, folder: Path) -> VectorIndex | None:
        """Turns a version learned from the log: they widen what the plugin treats as in scope."""
        path = folder / "learned.jsonl"
        if not path.is_file() or not path.stat().st_size:
            return None
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            texts, meta = [r["text"] for r in rows], {"ids": [r["source"] for r in rows], "labels": [r["label"] for r in rows]}
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{path} is damaged ({exc}); roll back or fine-tune again") from exc
        return VectorIndex.build(self.encoder.encode(texts), meta)

    def refresh(self) -> bool:
        """Load a newly promoted (or rolled back) model if `current` changed; True when it did."""
        swapped = [state.refresh() for state in self.extensions.values() if callable(getattr(state, "refresh", None))]
        if any(swapped):  # every kind's state is refreshed, not only the first that changed
            return True
        self._refresh_thresholds()
        stamp = self.versions.stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp  # a model that fails to load is reported once, not retried every turn
        learned = self.learned
        try:
            self.learned = None
            classifier, state = self._load_classifier()
        except (ModelError, PluginError):
            self.learned = learned
            raise
        except (OSError, ValueError) as exc:
            self.learned = learned
            raise ModelError(f"{self.versions.pointer}: {exc}") from exc
        self.classifier, self.model_state = classifier, state
        self.labels += [lab for lab in self.classifier.labels if lab not in self.labels]
        if self.notify:
            self.notify(f"{self.name}: now using {self.model_state}")
        return True

    def _refresh_thresholds(self) -> None:
        """Pick up a threshold accepted (or rejected) since the last turn."""
        stamp = thresholds.stamp(self.versions.root)
        if stamp != self._thresholds_stamp:
            self._thresholds_stamp = stamp
            self.thresholds = thresholds.apply(self.manifest.thresholds, self.versions.root)
            if self.notify:
                self.notify(f"{self.name}: min_confidence now {self.thresholds.min_confidence:g}")

    def _corpus_pairsby_label(self) -> dict[str, "np.ndarray"]:
        """Corpus row numbers per label, for answering from the predicted intent's entries."""
        import numpy as np

        if self.corpus_index is None:
            return {}
        groups: dict[str, list[int]] = {}
        for i, label in enumerate(self.corpus_index.labels):
            if label:
                groups.setdefault(label, []).append(i)
        return {k: np.array(v, dtype=np.int64) for k, v in groups.items()}

    # ---- answering --------------------------------------------------------------------------
    def similarity(self, vectors: "np.ndarray") -> "np.ndarray":
        """Cosine similarity of each query to its nearest example."""
        import numpy as np

        scores, _ = self.examples_index.search(vectors, 1)
        if self.learned is not None:
            learned, _ = self.learned.search(vectors, 1)
            return np.maximum(scores[:, 0], learned[:, 0])
        return scores[:, 0]

    def classify(self, vectors: "np.ndarray", texts: list[str]) -> "np.ndarray":
        """Label probabilities, columns in `self.labels` order (a tuned encoder reads the texts)."""
        probs = self.with_neighbours(self.classifier.predict_proba(texts, vectors), vectors)
        if self.classifier.labels != self.labels:
            probs = _align(probs, self.classifier.labels, self.labels)
        return probs

    def with_neighbours(self, probs: "np.ndarray", vectors: "np.ndarray") -> "np.ndarray":
        """A shared head's probabilities blended with the nearest labelled rows' votes, as its config says."""
        near = self.classifier.config.get("neighbours") if self.classifier.encoder is None else None
        if not near or near.get("weight", 1.0) >= 1.0 or not len(vectors):
            return probs
        from agent.models.neighbours import blend

        return blend(probs, self._votes(vectors, int(near["k"]), float(near["tau"])), float(near["weight"]))

    def _votes(self, vectors: "np.ndarray", k: int, tau: float) -> "np.ndarray":
        """The k nearest labelled rows' votes (examples and learned turns), columns in the classifier's order."""
        import numpy as np

        from agent.models.neighbours import votes

        index = {label: i for i, label in enumerate(self.classifier.labels)}
        parts = [self.examples_index] + ([self.learned] if self.learned is not None else [])
        scores, labels = [], []
        for vi in parts:
            s, rows = vi.search(vectors, min(k, vi.index.ntotal))
            known = vi.labels
            scores.append(s)
            labels.append(np.array([[index.get(known[r], -1) if r >= 0 else -1 for r in row] for row in rows]))
        s, lab = np.concatenate(scores, axis=1), np.concatenate(labels, axis=1)
        top = np.argsort(-s, axis=1)[:, :k]
        return votes(np.take_along_axis(s, top, axis=1), np.take_along_axis(lab, top, axis=1), len(index), tau)

    def decide(self, probs: "np.ndarray", similarity: float) -> Decision:
        """Pick a label, or a fallback reason when the evidence is too weak."""
        th = self.thresholds
        order = probs.argsort()[::-1][:3]
        top = [(self.labels[i], float(probs[i])) for i in order]
        (label, p1), p2 = top[0], (top[1][1] if len(top) > 1 else 0.0)
        reason = None
        if similarity < th.min_similarity:
            reason = f"out_of_scope {_below(similarity, th.min_similarity)}"
        elif p1 < th.min_confidence:
            reason = f"low_confidence {_below(p1, th.min_confidence)}"
        elif p1 - p2 < th.min_margin:
            reason = f"ambiguous {p1:.2f} vs {p2:.2f}"
        return Decision(label, p1, top, reason)

    def retrieve(self, vector: "np.ndarray", label: str | None) -> tuple[list[Hit], Hit | None]:
        """Top-k corpus hits, and the best entry for the label (the answer), if any."""
        if self.corpus_index is None:
            return [], None
        r = self.manifest.retrieval
        assert r is not None
        query = vector.reshape(1, -1)
        scores, rows = self.corpus_index.search(query, r.top_k)
        hits = [self._hit(int(i), float(s)) for s, i in zip(scores[0], rows[0]) if i >= 0]
        pairsfor_label = self._pairsby_label.get(label or "")
        if pairsfor_label is None:
            return hits, (hits[0] if hits and not self._pairsby_label else None)
        best_s, best_i = self.corpus_index.search(query, 1, rows=pairsfor_label)
        return hits, self._hit(int(best_i[0, 0]), float(best_s[0, 0]))

    def entry(self, entry_id: str, vector: "np.ndarray") -> Hit | None:
        """The corpus entry with this id, scored against `vector`; None when the corpus has no such entry."""
        import numpy as np

        if self.corpus_index is None:
            return None
        if entry_id not in self._entry_rows:
            return None
        row = np.array([self._entry_rows[entry_id]], dtype=np.int64)
        score, _ = self.corpus_index.search(vector.reshape(1, -1), 1, rows=row)
        return self._hit(int(row[0]), float(score[0, 0]))

    def _hit(self, row: int, score: float) -> Hit:
        """A corpus row as a Hit."""
        r = self.manifest.retrieval
        assert r is not None
        entry = self.corpus[row]
        text = " ".join(entry[c] for c in r.text_columns)
        return Hit(entry[r.id_column], round(score, 4), text, entry[r.answer_column], entry.get(r.label_column or "") or None)

    def describe(self, label: str) -> str:
        """A label's description, or its name."""
        return self.manifest.labels.get(label) or label.replace("_", " ")


def _align(probs: "np.ndarray", have: list[str], want: list[str]) -> "np.ndarray":
    """Reorder probability columns from a model's label order to the plugin's (missing labels get 0)."""
    import numpy as np

    out = np.zeros((probs.shape[0], len(want)), dtype=probs.dtype)
    for j, label in enumerate(have):
        if label in want:
            out[:, want.index(label)] = probs[:, j]
    return out


def _below(value: float, bar: float) -> str:
    """'0.34 < 0.35', with more decimals where two would show the value equal to the bar ('0.3496 < 0.35')."""
    digits = next((d for d in range(2, 7) if f"{value:.{d}f}" != f"{bar:.{d}f}"), 6)
    return f"{value:.{digits}f} < {bar:.2f}"
