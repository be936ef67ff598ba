"""Training one shared encoder for every plugin at once (mode `shared`).

Each plugin is a task: its texts, labels and a head (started from its frozen-encoder probe). Every
step takes one batch of one task; the loss is that task's cross-entropy plus a retrieval term that
keeps each embedding near the packaged encoder's embedding of the same text (cosine distance to a
target computed once, before training), so routing, FAQ search and similarity thresholds keep
working with the tuned encoder. A plugin with few rows per label adds a supervised contrastive term
(each row drawn towards the batch's rows of its label), and so does the plugin asked for when its
batches hold, on average, another row of each row's label (no more labels than a batch has rows,
less one): Financial PhraseBank's held-out rows preferred it (0.853 against 0.845), BANKING77's
(77 labels, batches of 32) did not (0.930 against 0.931). Batches group rows of similar length
(little padding), and a batch's gradients are taken a group of rows at a time, so memory follows the group, not the
batch; texts are tokenised once; after each epoch the tuned task's held-out rows are scored, and training stops when
they have not improved for a quarter of the planned epochs, keeping the best weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Sequence

from agent.learn.trainer import CancelFn, Loop, Plan, ProgressFn, adamw
from agent.models.classifier import TextClassifier
from agent.text.spelling import spelt

if TYPE_CHECKING:
    import numpy as np
    import torch

    from agent.models.encoder import Encoder

POOL = 50  # batches per pool sorted by length: enough to cut padding, few enough to keep batches mixed
KEEP = 0.5  # weight of the retrieval term against the classification loss
PER_LABEL, LABELS = 4, 16  # a few-shot task's batch: 16 labels, up to 4 rows of each (each row meets others of its label)
TAU = 0.1  # temperature of the supervised contrastive term
# A batch's gradients are computed group by group, each group rows of similar length of at most this many padded tokens,
# so a step holds one group's activations (about 280 kB a token in MiniLM on a CPU), however long the batch's texts.
# 512 was the fastest of 128 / 512 / 2,048 on the 10-shot BANKING77 run; a GPU takes larger groups.
GROUP_TOKENS = {"cpu": 512, "cuda": 8192}
SCORE_TOKENS = 4096  # padded tokens per batch when scoring held-out rows (no gradients: nothing is kept)


@dataclass
class Task:
    """One plugin's share of the training."""

    name: str
    texts: list[str]
    labels: list[str]
    head: TextClassifier  # the probe it starts from
    targets: "np.ndarray"  # the packaged encoder's embeddings of `texts` (the retrieval term's targets)
    few: bool = False  # few rows per label: label-balanced batches and a supervised contrastive term


@dataclass
class Watch:
    """Held-out rows of the task being fine-tuned: scored after each epoch for early stopping."""

    task: int
    texts: list[str]
    gold: list[str]


def length_batches(lengths: Sequence[int], batch_size: int, gen: "torch.Generator") -> list[list[int]]:
    """Row numbers in batches of similar length, in a random order (a new one on every call)."""
    import torch

    order = torch.randperm(len(lengths), generator=gen).tolist()
    pool = batch_size * POOL
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffled = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in shuffled]


def label_batches(labels: Sequence[int], gen: "torch.Generator") -> list[list[int]]:
    """Row numbers in batches of LABELS labels with up to PER_LABEL rows each, every row once."""
    import torch

    pools: dict[int, list[int]] = {}
    for i in torch.randperm(len(labels), generator=gen).tolist():
        pools.setdefault(int(labels[i]), []).append(i)
    batches: list[list[int]] = []
    while len(live := [k for k, rows in pools.items() if rows]) > 1:
        picked = [live[i] for i in torch.randperm(len(live), generator=gen)[:LABELS].tolist()]
        batches.append([i for k in picked for i in pools[k][:PER_LABEL]])
        for k in picked:
            pools[k] = pools[k][PER_LABEL:]
    rest, size = [i for rows in pools.values() for i in rows], LABELS * PER_LABEL  # one label's rows are left
    return batches + [rest[i:i + size] for i in range(0, len(rest), size)]


def contrasted(tasks: Sequence[Task], batch_size: int) -> list[bool]:
    """Which tasks add the contrastive term: those with few rows per label, and the plugin asked for (the first)
    when a batch holds, on average, another row of each row's label (batch size − 1 ≥ its labels)."""
    return [t.few or (k == 0 and batch_size - 1 >= len(set(t.labels))) for k, t in enumerate(tasks)]


def supcon(pooled: "torch.Tensor", y: "torch.Tensor", tau: float = TAU) -> "torch.Tensor":
    """Supervised contrastive loss: each row drawn towards the batch's rows of its label, away from the rest."""
    import torch

    n = pooled.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=pooled.device)
    sims = (pooled @ pooled.T / tau).masked_fill(eye, -1e9)
    logp = sims - torch.logsumexp(sims, dim=1, keepdim=True)
    pos = (y[:, None] == y[None, :]) & ~eye
    has = pos.any(1)
    if not bool(has.any()):
        return pooled.sum() * 0.0
    return (-(logp * pos).sum(1)[has] / pos.sum(1)[has]).mean()


def task_batches(task: Task, ids: list[list[int]], y: "torch.Tensor", batch_size: int,
                 gen: "torch.Generator") -> list[list[int]]:
    """One epoch of a task's batches: by label for a few-shot task, by length otherwise."""
    if task.few:
        return label_batches(y.tolist(), gen)
    return length_batches([len(x) for x in ids], batch_size, gen)


def epoch_schedule(tasks: Sequence[Task], ids: list[list[list[int]]], ys: list["torch.Tensor"], batch_size: int,
                   gen: "torch.Generator", capped: bool = False) -> list[tuple[int, list[int]]]:
    """(task, rows) of one epoch's batches; `capped`: the other tasks' batches at most as many as the first's."""
    import torch

    schedule = [(k, b) for k, t in enumerate(tasks) for b in task_batches(t, ids[k], ys[k], batch_size, gen)]
    if not capped:
        return schedule
    first = [s for s in schedule if s[0] == 0]
    others = [s for s in schedule if s[0] != 0]
    keep = torch.randperm(len(others), generator=gen)[: len(first)].tolist()
    return first + [others[i] for i in sorted(keep)]


def patience(epochs: float) -> int:
    """Epochs without a better held-out score before training stops: a quarter of the planned ones, at least 1."""
    return max(1, math.ceil(epochs / 4))


def steps_per_epoch(tasks: Sequence[Task], batch_size: int) -> int:
    """Optimizer steps one pass over every task's rows takes."""
    return sum(_label_steps(t.labels) if t.few else max(1, math.ceil(len(t.texts) / batch_size)) for t in tasks)


def _label_steps(labels: Sequence[str]) -> int:
    """About how many label-balanced batches one pass over a few-shot task's rows takes."""
    from collections import Counter

    groups = sum(math.ceil(n / PER_LABEL) for n in Counter(labels).values())
    return max(1, math.ceil(groups / LABELS))


def train_shared(tasks: Sequence[Task], plan: Plan, watch: Watch | None = None, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None, keep: float = KEEP,
                 capped: bool = False) -> tuple["Encoder", list[TextClassifier], dict[str, Any]]:
    """Train the packaged encoder and one head per task; return the encoder, the heads and run statistics.
    `capped`: each epoch replays at most as many batches of the other tasks as the first task has."""
    import numpy as np
    import torch

    from agent.models.encoder import Encoder

    torch.manual_seed(plan.seed)
    device = torch.device(plan.device)
    base = Encoder(device="cpu")
    ids = [_token_ids(base, t.texts, plan.max_length) for t in tasks]
    net = _MultiNet(base.model.train(), [t.head for t in tasks]).to(device)
    budget = GROUP_TOKENS.get(device.type, GROUP_TOKENS["cuda"])
    ys = [torch.tensor([t.head.labels.index(lab) for lab in t.labels], dtype=torch.long) for t in tasks]
    targets = [torch.from_numpy(np.ascontiguousarray(t.targets, dtype=np.float32)) for t in tasks]
    opt = adamw([{"params": list(net.backbone.parameters()), "lr": plan.lr},
                 {"params": list(net.heads.parameters()), "lr": plan.lr * plan.head_lr_scale}])
    loop = Loop(opt, planned_steps(tasks, plan, capped), plan.device, plan.mode, progress, cancel, plan.max_seconds)
    gen = torch.Generator().manual_seed(plan.seed)
    contrast = contrasted(tasks, plan.batch_size)

    def run(batch: tuple[int, Any]) -> float:
        k, idx = batch
        opt.zero_grad()
        loss = _backward(net, [ids[k][i] for i in idx], k, ys[k][idx].to(device), targets[k][idx].to(device), contrast[k], keep,
                         budget)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return loss

    best = Best(patience(plan.epochs))
    while not loop.done:
        schedule = epoch_schedule(tasks, ids, ys, plan.batch_size, gen, capped)
        loop.epoch((schedule[j] for j in torch.randperm(len(schedule), generator=gen).tolist()), run)
        if watch is not None and watch.texts and loop.stopped is None:
            stop = best.judge(_score(net, base, watch, device, plan.max_length), net)
            loop.stopped = stop if not loop.done else None
    best.restore(net, loop.stopped)
    opt.zero_grad(set_to_none=True)  # the returned encoder carries its weights only, not the last step's gradients
    opt = loop.sched = None  # Adam's two moments go now
    net = net.eval().cpu()
    heads = [_head_of(net.heads[k], t.head, plan.mode) for k, t in enumerate(tasks)]
    encoder = Encoder(device=plan.device, model=net.backbone, tokenizer=base.tokenizer)
    stats = {"steps": loop.step, "planned_steps": loop.total, "seconds": round(time.perf_counter() - loop.start, 1),
             "final_loss": loop.final_loss(), "device": plan.device, "stopped_early": loop.stopped,
             "epoch_scores": [round(s, 4) for s in best.scores], "tasks": [t.name for t in tasks], "keep": keep, "processes": 1}
    return encoder, heads, stats


class Best:
    """The best epoch's weights on the held-out rows, and when to stop for lack of progress."""

    def __init__(self, patience: int) -> None:
        self.patience, self.scores, self.state, self.epoch = patience, [], None, 0

    def judge(self, score: float, net: Any) -> str | None:
        """Record an epoch's score (keeping its weights when best); why to stop, when it stopped improving."""
        self.scores.append(score)
        if self.state is None or score >= max(self.scores[:-1], default=score):  # a tie keeps the later weights
            self.state, self.epoch = {k: v.detach().clone() for k, v in net.state_dict().items()}, len(self.scores)
        elif len(self.scores) - self.epoch >= self.patience:
            return (f"held-out accuracy stopped improving after epoch {self.epoch} "
                    f"({', '.join(f'{s:.4f}' for s in self.scores)})")
        return None

    def restore(self, net: Any, stopped: str | None) -> None:
        """Put the best weights back when the last epoch scored lower, or time ran out after the last score
        (those steps were never judged); then let them go."""
        if self.state is not None and (self.scores[-1] < self.scores[self.epoch - 1] or (stopped or "").startswith("time limit")):
            net.load_state_dict(self.state)
        self.state = None


def planned_steps(tasks: Sequence[Task], plan: Plan, capped: bool) -> int:
    """Optimizer steps of a run: the epochs' batches, each epoch capped at twice the first task's when `capped`."""
    per_epoch = steps_per_epoch(tasks, plan.batch_size)
    if capped:
        per_epoch = min(per_epoch, 2 * steps_per_epoch(tasks[:1], plan.batch_size))
    return max(1, int(per_epoch * plan.epochs))


def _backward(net: Any, rows: list[list[int]], task: int, y: "torch.Tensor", target: "torch.Tensor", contrast: bool,
              keep: float, budget: int) -> float:
    """A batch's loss; its gradients accumulated group by group (one group's activations held at a time). The
    contrastive term ties every row to the others: it reaches each group as the gradient of the group's embeddings,
    taken from a first pass without gradients whose dropout the second pass replays, so the sum is exact."""
    import torch

    groups = length_groups([len(r) for r in rows], budget)
    if len(groups) == 1:
        logits, pooled = net(_pad(rows, y.device), task)
        loss = _row_losses(logits, pooled, y, target, keep).mean() + (supcon(pooled, y) if contrast else 0.0)
        loss.backward()
        return float(loss.detach())
    pull, value, states = _contrast_pull(net, rows, groups, task, y) if contrast else (None, 0.0, [])
    lookup = Lookups(net.backbone)
    for n, g in enumerate(groups):
        if states:
            _set_rng(states[n], y.device)
        at = torch.tensor(g, device=y.device)
        logits, pooled = net(lookup.detached(_pad([rows[i] for i in g], y.device)), task)
        part = _row_losses(logits, pooled, y[at], target[at], keep).sum() / len(rows)
        value += float(part.detach())
        (part + (pooled * pull[at]).sum() if pull is not None else part).backward()
    lookup.backward()
    return value


class Lookups:
    """The word-embedding lookups of a batch's groups, differentiated once for the whole batch. The table's gradient
    is dense (vocabulary × width, 47 MB in MiniLM): built and added up for every group, it made a step of three
    groups about 5% slower on a CPU. Each group runs from its looked-up vectors as a leaf instead,
    and their gradients reach the table in one backward pass at the end (the same sum)."""

    def __init__(self, backbone: Any) -> None:
        self.table = backbone.get_input_embeddings() if hasattr(backbone, "get_input_embeddings") else None
        self.ids: list["torch.Tensor"] = []
        self.leaves: list["torch.Tensor"] = []

    def detached(self, batch: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
        """The batch with its token ids replaced by their vectors, a leaf whose gradient is kept for later."""
        if self.table is None or not self.table.weight.requires_grad:
            return batch
        import torch

        ids = batch.pop("input_ids")
        with torch.no_grad():  # the lookup's own graph would be thrown away: backward() builds it once for all groups
            leaf = self.table(ids).requires_grad_(True)
        self.ids.append(ids)
        self.leaves.append(leaf)
        return {**batch, "inputs_embeds": leaf}

    def backward(self) -> None:
        """The groups' vector gradients into the table, in one pass."""
        import torch

        if not self.leaves:
            return
        width = self.leaves[0].shape[-1]
        ids = torch.cat([i.reshape(-1) for i in self.ids])
        grads = torch.cat([v.grad.reshape(-1, width) for v in self.leaves])
        self.table(ids).backward(grads)
        self.ids, self.leaves = [], []


def _row_losses(logits: "torch.Tensor", pooled: "torch.Tensor", y: "torch.Tensor", target: "torch.Tensor",
                keep: float) -> "torch.Tensor":
    """Each row's cross-entropy plus the retrieval term (cosine distance to the packaged encoder's embedding)."""
    import torch

    loss = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1, reduction="none")
    return loss + keep * (1 - (pooled * target).sum(-1)) if keep else loss


def _contrast_pull(net: Any, rows: list[list[int]], groups: list[list[int]], task: int,
                   y: "torch.Tensor") -> tuple["torch.Tensor", float, list[Any]]:
    """The contrastive term's gradient with respect to every row's embedding, its value, and the random state before
    each group (the second pass replays the same dropout)."""
    import torch

    states, outs = [], []
    with torch.no_grad():
        for g in groups:
            states.append(_rng(y.device))
            outs.append(net(_pad([rows[i] for i in g], y.device), task)[1])
    pooled = torch.empty(len(rows), outs[0].shape[1], device=y.device)
    pooled[torch.tensor([i for g in groups for i in g], device=y.device)] = torch.cat(outs)
    pooled.requires_grad_(True)
    loss = supcon(pooled, y)
    loss.backward()
    return pooled.grad, float(loss.detach()), states


def _rng(device: "torch.device") -> tuple[Any, Any]:
    """The random state dropout draws from (the CPU's, and the GPU's on CUDA)."""
    import torch

    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng(state: tuple[Any, Any], device: "torch.device") -> None:
    """Put back a state _rng took."""
    import torch

    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def length_groups(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Positions grouped by length, shortest first, each group's rows × its longest row at most `budget` tokens
    (a row longer than that alone)."""
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if not groups or (len(groups[-1]) + 1) * lengths[i] > budget:
            groups.append([])
        groups[-1].append(i)
    return groups


def _token_ids(base: "Encoder", texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, computed once for the whole run."""
    enc = base.tokenizer(spelt(list(texts), base.vocab), truncation=True, max_length=max_length)
    return enc["input_ids"]


def _pad(rows: list[list[int]], device: "torch.device") -> dict[str, "torch.Tensor"]:
    """A padded batch (pad id 0, as the MiniLM tokenizer pads) with its attention mask."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "token_type_ids": torch.zeros_like(ids).to(device)}


def _score(net: Any, base: "Encoder", watch: Watch, device: "torch.device", max_length: int) -> float:
    """Accuracy of the watched task's head on its held-out rows, with the weights as they are now."""
    import torch

    labels = net.label_names[watch.task]
    ids = _token_ids(base, watch.texts, max_length)
    right = 0
    net.eval()
    with torch.inference_mode():
        for idx in length_groups([len(r) for r in ids], SCORE_TOKENS):
            logits, _ = net(_pad([ids[i] for i in idx], device), watch.task)
            right += sum(labels[int(p)] == watch.gold[i] for p, i in zip(logits.argmax(-1).tolist(), idx))
    net.train()
    return right / max(len(ids), 1)


def _head_of(layer: Any, start: TextClassifier, mode: str) -> TextClassifier:
    """A trained head layer as a TextClassifier with the probe's labels and config."""
    return TextClassifier(start.labels, layer.weight.detach().cpu().numpy().copy(), layer.bias.detach().cpu().numpy().copy(),
                          mode, dict(start.config))


def _MultiNet(backbone: Any, heads: list[TextClassifier]) -> Any:
    """Encoder, mean pooling, unit length, one linear head per task: the same maths as inference."""
    return _multinet_class()(backbone, heads)


@cache
def _multinet_class() -> type:
    """Defined once, lazily (importing this module does not import torch). The parts arrive as arguments, never
    through a closure: a class is freed only by the cyclic collector, and one holding an encoder would keep every
    fold's weights and gradients alive until then."""
    import torch

    class MultiNet(torch.nn.Module):
        def __init__(self, backbone: Any, heads: list[TextClassifier]) -> None:
            super().__init__()
            self.backbone = backbone
            self.label_names = [h.labels for h in heads]
            self.heads = torch.nn.ModuleList()
            for h in heads:
                layer = torch.nn.Linear(h.weight.shape[1], h.weight.shape[0])
                layer.weight.data = torch.from_numpy(h.weight.copy())
                layer.bias.data = torch.from_numpy(h.bias.copy())
                self.heads.append(layer)

        def forward(self, batch: dict, task: int) -> tuple["torch.Tensor", "torch.Tensor"]:
            hidden = self.backbone(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
            return self.heads[task](pooled), pooled

    return MultiNet
