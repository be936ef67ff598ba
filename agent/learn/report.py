"""The fine-tune report: candidate against current on the same held-out rows, as JSON and Markdown."""

from __future__ import annotations

from typing import Any, Sequence

from agent.learn.evaluate import metrics

GRID = [round(0.05 * i, 2) for i in range(20)]


def histogram(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> list[dict[str, Any]]:
    """Counts of right and wrong predictions per confidence bin."""
    out = [{"from": round(i / bins, 2), "to": round((i + 1) / bins, 2), "correct": 0, "wrong": 0} for i in range(bins)]
    for c, ok in zip(confidence, correct):
        b = out[min(int(c * bins), bins - 1)]
        b["correct" if ok else "wrong"] += 1
    return out


def suggest_threshold(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """The min_confidence that keeps the most (right − wrong) answers: below it, answers are wrong as often as right."""
    def gain(t: float) -> int:
        return sum((1 if ok else -1) for c, ok in zip(confidence, correct) if c >= t)

    return max(GRID, key=lambda t: (gain(t), -t))


def f1_drops(candidate: dict[str, Any], current: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Labels whose F1 is lower with the candidate than with the current model."""
    if not current:
        return []
    drops = []
    for label, now in current["per_label"].items():
        new = candidate["per_label"].get(label, {"f1": 0.0})
        if new["f1"] < now["f1"]:
            drops.append({"label": label, "current_f1": now["f1"], "candidate_f1": new["f1"],
                          "drop": round(now["f1"] - new["f1"], 4)})
    return sorted(drops, key=lambda d: -d["drop"])


def compare(gold: list[str], candidate: tuple[list[str], list[float]], current: list[str] | None) -> dict[str, Any]:
    """Metrics of both models on the held-out rows, the F1 drops, the histogram and a threshold."""
    pred, conf = candidate
    right = [g == p for g, p in zip(gold, pred)]
    cand = metrics(gold, pred)
    cur = metrics(gold, current) if current is not None else None
    return {"candidate": cand, "current": cur, "f1_drops": f1_drops(cand, cur),
            "confidence_histogram": histogram(conf, right), "suggested_min_confidence": suggest_threshold(conf, right)}


def markdown(report: dict[str, Any]) -> str:
    """A readable version of the report."""
    ev, run = report["evaluation"], report["run"]
    cand, cur, folds = ev["candidate"], ev["current"], ev.get("cross_validated")
    judged = (f"judged by {folds['folds']}-fold cross-validation on {folds['rows']}" if folds
              else f"held-out rows {report['data']['holdout_rows']}")
    against = (folds or {}).get("against") or f"current {report['current_version'] or 'head'}"
    lines = [f"# {report['plugin']} {report['version']}: {report['status']}", "",
             f"- decision: {report['decision']}",
             f"- mode {run['mode']} on {run['device']}, " + (f"{run['steps']} steps, " if run.get("steps") else "")
             + f"{run['seconds']} s" + _memory(run),
             f"- training rows {report['data']['train_rows']} (from the log: {report['data']['log_rows']}), {judged}",
             f"- accuracy {cand['accuracy']:.4f} ({against}: {cur['accuracy']:.4f})" if cur
             else f"- accuracy {cand['accuracy']:.4f}",
             f"- macro-F1 {cand['macro_f1']:.4f}", f"- suggested min_confidence {ev['suggested_min_confidence']}", ""]
    if report["data"]["new_labels"]:
        lines += [f"New labels: {', '.join(report['data']['new_labels'])}", ""]
    if report["data"].get("dropped_labels"):
        lines += [f"Labels dropped (no training rows left): {', '.join(report['data']['dropped_labels'])}", ""]
    if ev["f1_drops"]:
        lines += ["## Labels whose F1 dropped", "", "| label | current | candidate |", "|---|---|---|"]
        lines += [f"| {d['label']} | {d['current_f1']:.3f} | {d['candidate_f1']:.3f} |" for d in ev["f1_drops"]] + [""]
    if report["data"]["conflicts"]:
        lines += ["## Conflicting labels resolved", "", "| text | labels | chosen |", "|---|---|---|"]
        lines += [f"| {_cell(c['text'])} | {', '.join(c['labels'])} | {c['chosen']} |" for c in report["data"]["conflicts"]] + [""]
    lines += ["## Per label", "", "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
              for k, v in cand["per_label"].items()] + [""]
    lines += ["## Most confused", "", "| gold | predicted | count |", "|---|---|---|"]
    lines += [f"| {c['gold']} | {c['predicted']} | {c['count']} |" for c in cand["confused"]] + [""]
    lines += ["## Confidence", "", "| confidence | right | wrong |", "|---|---|---|"]
    lines += [f"| {b['from']:.1f}–{b['to']:.1f} | {b['correct']} | {b['wrong']} |" for b in ev["confidence_histogram"]]
    return "\n".join(lines) + "\n"


def _memory(run: dict[str, Any]) -> str:
    """The run's peak memory, beside its time (reports written before it was recorded have none)."""
    rss = f", peak RSS {run['peak_rss_mb']:.0f} MB" if run.get("peak_rss_mb") is not None else ""
    return rss + (f", peak GPU memory {run['peak_gpu_mb']:.0f} MB" if run.get("peak_gpu_mb") is not None else "")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")[:80]
