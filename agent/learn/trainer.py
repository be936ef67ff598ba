"""Training loops: a head on frozen embeddings, and LP-FT of the encoder (all weights or LoRA).

LP-FT: the head is first fitted on frozen embeddings (L-BFGS, as mode `head` does), then encoder and
head are trained together with AdamW (warm-up, linear decay, label smoothing), starting from that
head so the first steps do not scramble the pretrained features. The loop runs under accelerate,
so `accelerate launch` / `torchrun` spread it over several GPUs without code changes; each process
takes its own slice of every batch and only the main process writes anything.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from agent.errors import AgentError
from agent.memory import Trimmer
from agent.models.classifier import TextClassifier
from agent.text.spelling import spelt

if TYPE_CHECKING:
    import numpy as np

    from agent.models.encoder import Encoder


class Cancelled(AgentError):
    """The run was cancelled by its caller (Ctrl-C, or the UI's cancel button)."""


@dataclass
class Plan:
    """How to train: chosen once, shown to the person and recorded with the version."""

    mode: str = "full"
    device: str = "cpu"
    epochs: float = 3.0
    lr: float = 8e-5
    batch_size: int = 32
    seed: int = 0
    max_seconds: float | None = None
    max_length: int = 128
    head_lr_scale: float = 20.0
    lora_rank: int = 16
    notes: list[str] = field(default_factory=list)

    def lr_for_mode(self) -> float:
        """LoRA adapters start from zero and need a larger step."""
        return self.lr * 10 if self.mode == "lora" else self.lr


@dataclass
class Progress:
    """One progress report: what is running, how far, and the latest loss."""

    phase: str
    step: int
    total: int
    loss: float | None = None
    device: str = "cpu"
    mode: str = ""
    elapsed: float = 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far."""
        if not self.step or self.step >= self.total:
            return None
        return self.elapsed / self.step * (self.total - self.step)


ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]


def fit_head(vectors: "np.ndarray", labels: Sequence[str], order: Sequence[str], base_model: str) -> TextClassifier:
    """Mode `head`, and the linear-probe start of LP-FT."""
    return TextClassifier.fit(vectors, labels, order, base_model=base_model)


def steps_for(n_rows: int, plan: Plan) -> int:
    """Optimizer steps a plan takes on n rows."""
    return max(1, int(math.ceil(n_rows / plan.batch_size) * plan.epochs))


class Loop:
    """One training loop: the learning-rate schedule (10% warm-up, then linear decay), the stop checks (cancel,
    time limit), the steps taken, and progress. Every trainer of the agent runs its batches through one."""

    def __init__(self, opt: Any, total: int, device: str, mode: str, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None, max_seconds: float | None = None,
                 flags: Callable[[float], tuple[bool, bool]] | None = None, trim: bool = True) -> None:
        import torch

        self.total, self.device, self.mode, self.progress = total, device, mode, progress
        self.trim = Trimmer() if trim else None
        self.flags = flags or (lambda start: (bool(cancel and cancel()),
                                              bool(max_seconds and time.perf_counter() - start > max_seconds)))
        warmup = max(1, int(0.1 * total))
        self.sched: Any = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / total))
        self.start, self.step, self.losses, self.stopped = time.perf_counter(), 0, [], None

    @property
    def done(self) -> bool:
        """All steps taken, or stopped early."""
        return self.step >= self.total or self.stopped is not None

    def epoch(self, batches: Iterable[Any], run: Callable[[Any], float]) -> None:
        """`run(batch)` (forward, backward, optimizer step; its loss) for each batch until the steps or time run out;
        after each, the schedule steps, freed heap goes back once it has grown (unless `trim` is off), and progress is
        reported."""
        import numpy as np

        for batch in batches:
            if self.step >= self.total:
                break
            cancelled, late = self.flags(self.start)
            if cancelled:
                raise Cancelled("fine-tuning was cancelled; nothing was promoted")
            if late:
                self.stopped = f"time limit reached after {self.step} of {self.total} steps"
                break
            self.losses.append(run(batch))
            self.sched.step()
            if self.trim is not None:
                self.trim()
            self.step += 1
            if self.progress:
                self.progress(Progress("train", self.step, self.total, float(np.mean(self.losses[-20:])), self.device,
                                       self.mode, time.perf_counter() - self.start))

    def final_loss(self) -> float | None:
        """The mean of the last 20 steps' losses."""
        import numpy as np

        return round(float(np.mean(self.losses[-20:])), 4) if self.losses else None


def train_encoder(texts: Sequence[str], labels: Sequence[str], head: TextClassifier, plan: Plan,
                  progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> tuple["Encoder", TextClassifier, dict, Any]:
    """Train encoder and head together from the probe's head; return them, run statistics, and LoRA weights."""
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs

    from agent.models.encoder import Encoder

    torch.manual_seed(plan.seed)
    accelerator = Accelerator(cpu=plan.device == "cpu",  # the pooler is not trained: DDP must allow unused weights
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    base = Encoder(device="cpu")
    vocab = base.vocab  # pictographs spelt out as the encoder reads them (agent.text.spelling)
    backbone = base.model.train()
    if plan.mode == "lora":
        backbone = _with_lora(backbone, plan.lora_rank)
    net = _Net(backbone, head)
    y = torch.tensor([head.labels.index(label) for label in labels], dtype=torch.long)
    opt = _adamw(backbone, net.head, plan)
    loop = Loop(opt, steps_for(len(texts), plan), "", plan.mode, progress,
                flags=lambda start: _stop_flags(accelerator, cancel, plan, start))
    net, opt = accelerator.prepare(net, opt)
    loop.device = str(accelerator.device)
    rank, world = accelerator.process_index, accelerator.num_processes
    gen = torch.Generator().manual_seed(plan.seed)

    def run(idx: list[int]) -> float:
        batch = base.tokenizer(spelt([texts[j] for j in idx], vocab), padding=True, truncation=True,
                               max_length=plan.max_length, return_tensors="pt").to(accelerator.device)
        loss = torch.nn.functional.cross_entropy(net(batch), y[idx].to(accelerator.device), label_smoothing=0.1)
        opt.zero_grad()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return float(loss.detach())

    while not loop.done:
        order = torch.randperm(len(texts), generator=gen).tolist()
        loop.epoch((order[i : i + plan.batch_size][rank::world] or order[i : i + 1] for i in range(0, len(order), plan.batch_size)),
                   run)
    opt.zero_grad(set_to_none=True)  # the returned encoder carries its weights only, not the last step's gradients
    net = accelerator.unwrap_model(net).eval()
    accelerator.free_memory()  # its lists still hold the prepared model and optimizer (and Adam's two moments)
    opt = loop.sched = None  # Adam's two moments go now (the step function shares these names)
    tuned_head = TextClassifier(head.labels, net.head.weight.detach().cpu().numpy().copy(),
                                net.head.bias.detach().cpu().numpy().copy(), plan.mode, dict(head.config))
    adapter = _adapter(net.backbone) if plan.mode == "lora" else None
    trained = net.backbone.merge_and_unload() if plan.mode == "lora" else net.backbone
    run_device = "cuda" if loop.device.startswith("cuda") else "cpu"
    encoder = Encoder(device=run_device, model=trained, tokenizer=base.tokenizer)
    stats = {"steps": loop.step, "planned_steps": loop.total, "seconds": round(time.perf_counter() - loop.start, 1),
             "final_loss": loop.final_loss(), "device": loop.device, "stopped_early": loop.stopped, "processes": world}
    return encoder, tuned_head, stats, adapter


def _adamw(backbone: Any, head: Any, plan: Plan) -> Any:
    """AdamW over the encoder's trainable weights (the mode's rate) and the head's (scaled)."""
    return adamw([{"params": [p for p in backbone.parameters() if p.requires_grad], "lr": plan.lr_for_mode()},
                  {"params": list(head.parameters()), "lr": plan.lr * plan.head_lr_scale}])


def adamw(params: Any, lr: float = 1e-3, weight_decay: float = 0.01) -> Any:
    """AdamW, fused into one kernel where torch has one for these weights: the same update, and on a CPU the step of
    MiniLM's 22.7M weights takes 14 ms instead of 78 (about a sixth of a full BANKING77 training step). Weight lists,
    not generators: the plain optimizer gets them again where the fused one is refused."""
    import torch

    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or weights of a kind without a fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _adapter(peft_model: Any) -> tuple[dict, Any]:
    """LoRA weights (CPU copies) and their config, taken before they are merged."""
    from peft import get_peft_model_state_dict

    state = {k: v.detach().cpu().contiguous().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
    return state, peft_model.peft_config["default"]


def _stop_flags(accelerator: Any, cancel: CancelFn | None, plan: Plan, start: float) -> tuple[bool, bool]:
    """(cancelled, out of time), agreed by every process so that none waits for the others forever."""
    import torch

    flags = [bool(cancel and cancel()), bool(plan.max_seconds and time.perf_counter() - start > plan.max_seconds)]
    if accelerator.num_processes > 1:
        agreed = accelerator.reduce(torch.tensor(flags, dtype=torch.float32, device=accelerator.device), "sum")
        flags = [bool(x > 0) for x in agreed.tolist()]
    return flags[0], flags[1]


def time_step(texts: Sequence[str], plan: Plan, steps: int = 2) -> float:
    """Seconds one training step takes here (measured on a few real batches), for choosing a mode."""
    import torch

    from agent.models.encoder import Encoder

    base = Encoder(device=plan.device)
    model = base.model.train()
    if plan.mode == "lora":
        model = _with_lora(model, plan.lora_rank)
    batch = list(texts[: plan.batch_size])
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        enc = base.tokenizer(spelt(batch, base.vocab), padding=True, truncation=True, max_length=plan.max_length,
                             return_tensors="pt")
        enc = {k: v.to(base.device) for k, v in enc.items()}
        out = model(**enc).last_hidden_state.mean()
        out.backward()
        times.append(time.perf_counter() - t)
    del model, base
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return sorted(times[1:])[len(times[1:]) // 2]


def _with_lora(model: object, rank: int) -> object:
    """Wrap the encoder's attention and feed-forward projections with LoRA adapters."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.1,
                        target_modules=["query", "key", "value", "dense"])
    return get_peft_model(model, config)


def _net_class() -> type:
    """Defined lazily so importing this module does not import torch."""
    import torch

    class Net(torch.nn.Module):
        """Encoder, mean pooling, unit length, linear head: the same maths as inference."""

        def __init__(self, backbone: object, head: TextClassifier) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = torch.nn.Linear(head.weight.shape[1], head.weight.shape[0])
            self.head.weight.data = torch.from_numpy(head.weight.copy())
            self.head.bias.data = torch.from_numpy(head.bias.copy())

        def forward(self, batch: dict) -> "torch.Tensor":
            hidden = self.backbone(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return self.head(torch.nn.functional.normalize(pooled, dim=-1))

    return Net


def _Net(backbone: object, head: TextClassifier) -> object:
    """Build the training network."""
    return _net_class()(backbone, head)
