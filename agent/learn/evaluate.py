"""Evaluation of a plugin's classifier on labelled data: accuracy, macro-F1, per-label scores, confusions, OOS."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from agent.plugin.loaded import PluginRuntime

OOS = "oos"


def predict(runtime: "PluginRuntime", texts: list[str],
            progress: Callable[[int, int], None] | None = None) -> list[tuple[str, float, str | None]]:
    """(label, confidence, fallback_reason) per text, batched, with the same decisions as Agent.reply."""
    vectors = runtime.encoder.encode(texts, progress=progress)
    probs = runtime.classify(vectors, texts)
    sims = runtime.similarity(vectors)
    out = []
    for p, s in zip(probs, sims):
        d = runtime.decide(p, float(s))
        out.append((d.label, d.confidence, d.fallback_reason))
    return out


def evaluate(runtime: "PluginRuntime", texts: list[str], gold: list[str],
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """All metrics for one labelled set; with `oos` rows, a fallback counts as predicting `oos`."""
    start = time.perf_counter()
    results = predict(runtime, texts, progress)
    has_oos = OOS in gold
    pred = [OOS if has_oos and reason else label for label, _, reason in results]
    report = metrics(gold, pred)
    report["fallback_rate"] = round(sum(r[2] is not None for r in results) / max(len(results), 1), 4)
    if has_oos:
        report.update(oos_metrics(gold, pred))
    report["seconds"] = round(time.perf_counter() - start, 2)
    report["rows_per_second"] = round(len(texts) / max(report["seconds"], 1e-9), 1)
    report["model"] = runtime.model_state
    return report


def metrics(gold: list[str], pred: list[str], top_confusions: int = 10) -> dict[str, Any]:
    """Accuracy, macro-F1 over the labels seen in gold or predictions, per-label P/R/F1, confused pairs."""
    n = len(gold)
    correct = sum(g == p for g, p in zip(gold, pred))
    per_label = {}
    for label in sorted(set(gold) | set(pred)):
        tp = sum(g == p == label for g, p in zip(gold, pred))
        n_pred, n_gold = pred.count(label), gold.count(label)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": n_gold}
    confused = Counter((g, p) for g, p in zip(gold, pred) if g != p).most_common(top_confusions)
    return {
        "n": n,
        "accuracy": round(correct / n, 4) if n else 0.0,
        "macro_f1": round(sum(v["f1"] for v in per_label.values()) / len(per_label), 4) if per_label else 0.0,
        "per_label": per_label,
        "confused": [{"gold": g, "predicted": p, "count": c} for (g, p), c in confused],
    }


def oos_metrics(gold: list[str], pred: list[str]) -> dict[str, float]:
    """Out-of-scope recall and precision, and accuracy on the in-scope rows."""
    oos_gold = sum(g == OOS for g in gold)
    oos_pred = sum(p == OOS for p in pred)
    both = sum(g == p == OOS for g, p in zip(gold, pred))
    inscope = [(g, p) for g, p in zip(gold, pred) if g != OOS]
    return {
        "oos_recall": round(both / oos_gold, 4) if oos_gold else 0.0,
        "oos_precision": round(both / oos_pred, 4) if oos_pred else 0.0,
        "in_scope_accuracy": round(sum(g == p for g, p in inscope) / len(inscope), 4) if inscope else 0.0,
    }
