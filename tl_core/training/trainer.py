"""The training loop: devices, AMP, seeds, stop flag, NaN guard, events (the optimiser is `optim`,
evaluation and the feature map `evaluation`).

The trainer knows nothing about the UI or the run store: it reports through `on_event`
and saves through an optional `checkpointer`. One `Trainer` = one run.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from tl_core.base import events as ev
from tl_core.models.checkpoint import FORMAT as CHECKPOINT_FORMAT
from tl_core.config import RunConfig
from tl_core.data.loaders import CyclicSampler, RunData, augment, prepare
from tl_core.data.domains import get_domain
from tl_core.base.errors import ConfigError, RunAborted, TLError
from tl_core.training.evaluation import Evaluator
from tl_core.base.inputs import adapt
from tl_core.base.machine import cpu_count, mem_available_gb, run_threads
from tl_core.methods import Method, RunContext, Step, HookedMethod, get_method
from tl_core.models.model import from_config
from tl_core.training.optim import apply_lrs, lr_at, make_optimizer, param_groups
from tl_core.models.prefix_cache import PrefixCache, plan_cache, skip_reason
from tl_core.planning.provenance import run_provenance
from tl_core.training.state import TrainState
from tl_core.scores.stats import accuracy_ci
from tl_core.planning.validation import validate


class Diverged(TLError):
    """The loss became NaN or infinite."""


def pick_device(requested: str = "auto") -> torch.device:
    """`auto`: CUDA, then Apple MPS, then the CPU. An explicit device that is absent is an error."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise TLError("device 'cuda' was asked for but no CUDA GPU is visible here; use device 'auto' or 'cpu'.")
    if requested == "mps" and not has_mps:
        raise TLError("device 'mps' was asked for but Apple's MPS is not available here; use 'auto' or 'cpu'.")
    return torch.device(requested)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"CPU ({n} thread{'s' if n > 1 else ''} of {cpu_count()} cores)"
    return device.type.upper()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass
class RunResult:
    """What a run reports. `source_acc`/`target_acc` belong to the selected epoch (`best_epoch`),
    chosen by `selection` without target labels, never the best target accuracy over epochs."""

    status: str  # finished | failed | cancelled
    source_acc: float | None = None
    target_acc: float | None = None
    best_epoch: int | None = None
    selection: str = "last"
    last_target_acc: float | None = None
    batch_size: int = 0  # the batch size in use at the end (halved after running out of GPU memory)
    epochs_done: int = 0
    wall_s: float = 0.0
    train_s: float = 0.0
    device: str = ""
    trainable_params: int = 0
    total_params: int = 0
    reason: str = ""
    target_n: int = 0  # target images the accuracy is measured on
    target_acc_ci: list[float] | None = None  # its 95 % interval (Wilson)
    target_eval: str = ""  # which images those are, in words
    target_acc_estimate: float | None = None  # the same epoch's accuracy estimated without target labels (ATC)
    target_acc_estimate_ci: list[float] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds spent in each part of the run (Phases)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


class Phases(dict):
    """Seconds spent in each part of a run (set-up, data, training, evaluation, embedding, checkpoint,
    events): where a run's wall goes, for `bench/run_wall.py` and the run's record."""

    def timed(self, name: str, fn: Callable[..., Any], *args, **kw) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - t


class Trainer:
    def __init__(self, config: RunConfig, on_event: Callable[[ev.Event], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, checkpointer: Any = None,
                 data: RunData | None = None, resolve_run: Callable[[str, torch.device], Any] | None = None,
                 prefix_memo: dict | None = None):
        """`resolve_run(run_id, device)` loads the model of a run the method refers to (a teacher, a
        source model): references are resolved here, before training, so methods never read the store
        (the worker passes `runs.resolve_reference`, the run store of this TL_HOME)."""
        self.cfg = validate(config)
        self.resolve_run = resolve_run
        self.phases = Phases()
        sink = on_event or (lambda e: None)
        # progress reports are written during training steps (their time is inside `training` too)
        self.on_event = lambda e: self.phases.timed("progress writes" if isinstance(e, ev.Progress) else "events",
                                                    sink, e)
        self.should_stop = should_stop or (lambda: False)
        self.checkpointer = checkpointer
        self._data = data
        self._prefix_memo = prefix_memo  # frozen activations shared with other runs of this process (probes)

    # -- set-up --------------------------------------------------------------------
    def setup(self) -> None:
        t = self.cfg.train
        # its share of the cores (machine.run_threads); a Ray task uses the CPUs it declared (TL_THREADS)
        torch.set_num_threads(run_threads())
        self.device = pick_device(t.device)
        if self.device.type == "cpu":
            # near-zero activations of a confident model are denormal floats, which a CPU handles tens of times
            # slower (SHOT's adaptation epochs on LeNet slowed from 6 to 9 s without this)
            torch.set_flush_denormal(True)
        seed_everything(t.seed)
        self.data = self._data or self.phases.timed("data", prepare, self.cfg.data, t.seed)
        k = len(self.data.classes)
        self.model = from_config(self.cfg.model, self.data.channels, k).to(self.device)
        self.spec = self.model.backbone.input_spec
        self.method: Method = get_method(self.cfg.method.name)(self.cfg.method.params)
        self.method.build(self.model.backbone.feat_dim, k)
        self.method.modules.to(self.device)
        self.method.attach(self.model)
        self.method.refs = self._resolve_refs()
        # a plain loss method gets the hooks' defaults (they do nothing)
        self.hooks: HookedMethod = self.method if isinstance(self.method, HookedMethod) else HookedMethod()
        self.n_epochs = self.hooks.epochs(t.epochs)
        self.n_steps = self.hooks.steps(t.steps_per_epoch)
        self.channels_last = self.device.type == "cpu" and self.spec.size >= 16
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.amp = t.amp and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.amp and torch.cuda.is_bf16_supported() else torch.float16
        self.evaluator = Evaluator(self.model, self.data, self.spec, self.device, self.channels_last, self.amp,
                                   self.amp_dtype, t.embed_points, t.seed)
        self.ctx = RunContext(self.model, self.data, self.cfg, self.spec, self.device, self.channels_last,
                              self.evaluator.backbone_features, self.n_epochs, self.n_steps)
        self.evaluator.hooks, self.evaluator.ctx = self.hooks, self.ctx
        self.hooks.bind(self.ctx)
        opt = make_optimizer(param_groups(self.model, self.method.modules), t, self.method.owns_weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        d = self.data
        samplers = {"source": CyclicSampler(d.src_train, t.seed * 3 + 1),
                    "target": CyclicSampler(d.tgt_train, t.seed * 3 + 2)}
        if len(d.tgt_labelled):
            samplers["labelled"] = CyclicSampler(d.tgt_labelled, t.seed * 3 + 3)
        self.state = TrainState(self.model, self.method.modules, opt, samplers,
                                torch.Generator().manual_seed(t.seed * 3 + 4), t.batch_size)
        self.ctx.optimizer, self.ctx.set_lrs, self.ctx.lr_at = opt, self.set_lrs, self._lr
        self.total_steps = self.ctx.total_steps
        if t.embedding == "tsne":
            import openTSNE  # noqa: F401  (its ~1 s import belongs to set-up, not to the first epoch)
        self.trainable, self.total = self._param_counts()
        self.prefix_cache = self.evaluator.prefix_cache = self._make_prefix_cache()

    def _resolve_refs(self) -> dict[str, Any]:
        """The loaded models of the runs named by the method's run-reference parameters."""
        refs = {}
        for name, spec in self.method.params.items():
            rid = str(self.method.p.get(name) or "").strip()
            if spec.run_ref and rid:
                if self.resolve_run is None:
                    raise ConfigError(f"{self.method.label} refers to run {rid[:40]!r}, and this trainer was given "
                                      f"no run store to load it from (pass resolve_run).")
                refs[name] = self.resolve_run(rid, self.device)
        return refs

    def _make_prefix_cache(self) -> PrefixCache | None:
        """Cache the frozen stages' output of a pretrained backbone when it pays and fits (see
        prefix_cache.py); `cache_note` says what was decided."""
        bb, d, m = self.model.backbone, self.data, self.method
        self.cache_note = skip_reason(bb.pretrained, bb.frozen_depth, m.needs_pixels, self.cfg.train.augment,
                                      self.n_steps) or ""
        if self.cache_note:
            return None
        src_rows = torch.cat([d.src_train, d.src_val])
        tgt_rows = torch.cat([d.tgt_train if m.uses_target_data else d.tgt_labelled[:0], d.tgt_labelled])
        # a folder target evaluated on every image: its test split is its train pool, cached once
        shared = d.target.x_test is d.target.x_train and len(torch.unique(tgt_rows)) == len(d.target.x_train)
        n = (len(torch.unique(src_rows)) + len(torch.unique(tgt_rows))
             + len(d.source.x_test) + (0 if shared else len(d.target.x_test)))
        bs = self.state.batch_size
        per_step = bs * m.domains_per_step()  # the planner's count: a source-free step reads one domain
        if len(d.tgt_labelled):
            per_step += min(bs, max(2, len(d.tgt_labelled)))
        per_epoch_eval = len(d.source.x_test) + len(d.src_val) + len(d.target.x_test)
        without = self.total_steps * per_step + self.n_epochs * per_epoch_eval
        cache = PrefixCache(bb, self.spec, self.device, self.channels_last, memo=self._prefix_memo)
        ok, self.cache_note = plan_cache(n, cache.bytes_per_image(d.source.x_test), without, mem_available_gb)
        if not ok:
            return None
        cache.add("source/train", d.source.x_train, src_rows)
        cache.add("source/test", d.source.x_test)
        if len(tgt_rows):
            cache.add("target/train", d.target.x_train, tgt_rows)
        if shared:
            cache.alias("target/test", "target/train")
        else:
            cache.add("target/test", d.target.x_test)
        return cache

    def _param_counts(self) -> tuple[int, int]:
        ps = list(self.model.parameters()) + list(self.method.modules.parameters())
        return sum(p.numel() for p in ps if p.requires_grad), sum(p.numel() for p in ps)

    # -- one step ------------------------------------------------------------------
    def _batch(self, split: str, domain, idx: torch.Tensor, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(model input, the stored uint8 images) for some training images of a domain; the model
        input is the frozen stages' cached output when the run caches it."""
        raw = domain.x_train[idx]
        if self.prefix_cache is not None:
            return self.prefix_cache.rows(split, idx), raw
        x = adapt(raw, self.spec, self.device)
        if train and self.cfg.train.augment:
            x = augment(x, self.state.aug_g)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, raw

    def set_lrs(self, progress: float) -> None:
        """Each parameter group's learning rate: the schedule times the method's multiplier."""
        apply_lrs(self.state.optimizer, self._lr(progress), self.method.lr_multipliers(progress))

    MAX_HALVINGS = 4

    def train_step(self, step_no: int, epoch: int) -> tuple[dict[str, float], dict[str, float]]:
        """One optimisation step. Out of GPU memory: halve the batch (at most 4 times) and retry."""
        while True:
            try:
                return self._train_step(step_no, epoch)
            except torch.OutOfMemoryError:
                ts = self.state
                ts.optimizer.zero_grad(set_to_none=True)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if ts.halvings >= self.MAX_HALVINGS or ts.batch_size < 4:
                    raise RunAborted(f"out of memory at batch size {ts.batch_size} after halving it "
                                    f"{ts.halvings} times: choose a smaller input size, a smaller backbone or "
                                    f"freeze more stages.") from None
                ts.halvings += 1
                ts.batch_size //= 2
                self.on_event(ev.BatchHalved(batch_size=ts.batch_size, epoch=epoch + 1, step=step_no + 1))

    def _train_step(self, step_no: int, epoch: int) -> tuple[dict[str, float], dict[str, float]]:
        t, d = self.cfg.train, self.data
        progress = step_no / self.total_steps
        self.set_lrs(progress)
        ts = self.state
        bs = ts.batch_size
        parts: list[torch.Tensor] = []
        n_s = n_t = n_l = 0
        ys = xt = raw_t = ti = None
        if self.hooks.reads_source(epoch):
            si = ts.samplers["source"].next(bs)
            parts.append(self._batch("source/train", d.source, si, True)[0])
            ys, n_s = d.source.y_train[si].to(self.device), bs
        if self.method.uses_target_data and self.hooks.reads_target(epoch):
            ti = ts.samplers["target"].next(bs)
            xt, raw_t = self._batch("target/train", d.target, ti, self.method.jitters_target)
            parts.append(xt)
            n_t = bs
        y_l = None
        if "labelled" in ts.samplers:
            li = ts.samplers["labelled"].next(min(bs, max(2, len(d.tgt_labelled))))
            parts.append(self._batch("target/train", d.target, li, True)[0])
            y_l, n_l = d.y_target_train[li].to(self.device), len(li)
        x = torch.cat(parts)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            bb = self.model.backbone  # one pass: BatchNorm sees both domains
            f = bb.features(x) if self.prefix_cache is None else bb.features_from_prefix(x)
            logits = self.model.head(f)
            f, logits = f.float(), logits.float()
            step = Step(f_s=None, logits_s=None, y_s=None, progress=progress, epoch=epoch)
            if n_s:
                step.f_s, step.logits_s, step.y_s = f[:n_s], logits[:n_s], ys
            if n_t:
                step.f_t, step.logits_t = f[n_s:n_s + n_t], logits[n_s:n_s + n_t]
                step.x_t, step.raw_t = (xt if self.prefix_cache is None else None), raw_t
                step.idx_t = ti
            if n_l:
                step.f_tl, step.logits_tl, step.y_tl = f[n_s + n_t:], logits[n_s + n_t:], y_l
            terms = self.method.losses(step)
        loss = sum(terms.values())
        values = {k: float(v.detach()) for k, v in terms.items()}
        total = float(loss.detach())
        if not math.isfinite(total):
            bad = ", ".join(k for k, v in values.items() if not math.isfinite(v)) or "total"
            raise Diverged(
                f"diverged: the loss became {total} at epoch {epoch + 1}, step {step_no + 1} (term: {bad}). "
                f"Lower the learning rate (now {t.lr:g}, try {t.lr / 3:.2g})"
                + (" or the method's trade-off" if len(values) > 1 else "") + "."
            )
        ts.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(ts.optimizer)
        self.scaler.update()
        values["total"] = total
        return values, step.log

    def _lr(self, progress: float) -> float:
        return lr_at(self.cfg.train, progress)

    # -- evaluation (the run's `Evaluator`) ---------------------------------------
    def backbone_features(self, x_uint8: torch.Tensor, batch: int = 512) -> torch.Tensor:
        return self.evaluator.backbone_features(x_uint8, batch)

    def evaluate(self, epoch: int) -> dict[str, Any]:
        """The epoch's metrics; an epoch before the last reads each split's fixed sample when the run reports
        its last epoch (its readings decide nothing; `data.INTERIM_EVAL_IMAGES`)."""
        full = self.cfg.train.selection != "last" or epoch == self.n_epochs - 1
        return self.evaluator.evaluate(epoch, full=full)

    def embedding(self, epoch: int) -> ev.EmbeddingReady | None:
        event, self.state.embed = self.evaluator.embedding(epoch, self.cfg.train.embedding, self.state.embed,
                                                            self.cfg.train.seed)
        return event

    def provenance(self) -> dict[str, Any]:
        """The data, code and machine this run reads on (see `provenance.run_provenance`)."""
        src, tgt = get_domain(self.cfg.data.source), get_domain(self.cfg.data.target)
        return run_provenance(src, src.load(), tgt, tgt.load(), device_name(self.device), self.data.target_eval)

    def model_meta(self) -> dict[str, Any]:
        """What a checkpoint's model.json says about the model (enough to rebuild it for prediction)."""
        return {"format": CHECKPOINT_FORMAT, "config": self.cfg.to_dict(), "classes": self.data.classes,
                "backbone": self.cfg.model.backbone, "input_spec": self.spec.to_dict(),
                "in_channels": self.spec.channels, "num_classes": len(self.data.classes),
                "bottleneck": self.cfg.model.bottleneck, "head": self.cfg.model.head}

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.state.history

    # -- the loop ------------------------------------------------------------------
    def fit(self) -> RunResult:
        t0 = time.perf_counter()
        if not hasattr(self, "model"):
            self.phases.timed("set-up", self.setup)
            self.phases["set-up"] -= self.phases.get("data", 0.0)
        t, ts = self.cfg.train, self.state
        if self.checkpointer is not None and self.checkpointer.has_last():
            self.checkpointer.restore(ts)
        start = ts.epoch
        self.on_event(ev.RunStarted(device=device_name(self.device), total_steps=self.total_steps,
                                    trainable_params=self.trainable, total_params=self.total,
                                    start_epoch=start, batch_size=t.batch_size,
                                    epochs=self.n_epochs, provenance=self.provenance()))
        result = RunResult(status="finished", device=device_name(self.device),
                           trainable_params=self.trainable, total_params=self.total, history=ts.history)
        last_report = 0.0
        per_image = 2 if self.method.uses_target_data else 1
        train_s = 0.0
        try:
            self.model.train()
            for epoch in range(start, self.n_epochs):
                sums: dict[str, float] = {}
                logs: dict[str, float] = {}
                te = time.perf_counter()
                self.hooks.begin_epoch(self.ctx, epoch)
                custom = self.hooks.run_epoch(self.ctx, epoch)
                steps = 0 if custom is not None else self.n_steps
                if custom is not None:  # a closed-form or cached-feature epoch: one progress report for it
                    self.on_event(ev.Progress(epoch=epoch + 1, step=(epoch + 1) * self.n_steps,
                                              total_steps=self.total_steps, images_per_s=0.0, eta_s=0.0,
                                              losses=custom))
                for s in range(steps):
                    if self.should_stop():
                        raise _Stopped(epoch)
                    gstep = epoch * self.n_steps + s
                    vals, log = self.train_step(gstep, epoch)
                    for key, v in vals.items():
                        sums[key] = sums.get(key, 0.0) + v
                    for key, v in log.items():
                        logs[key] = logs.get(key, 0.0) + v
                    now = time.perf_counter()
                    if now - last_report >= 0.5 or s == steps - 1:
                        last_report = now
                        done = gstep + 1 - start * self.n_steps
                        rate = done / max(train_s + now - te, 1e-9)
                        self.on_event(ev.Progress(epoch=epoch + 1, step=gstep + 1, total_steps=self.total_steps,
                                                  images_per_s=rate * ts.batch_size * per_image,
                                                  eta_s=(self.total_steps - gstep - 1) / max(rate, 1e-9),
                                                  losses={k: v / (s + 1) for k, v in sums.items()}))
                train_s += time.perf_counter() - te
                m = self.phases.timed("evaluation", self.evaluate, epoch)
                n = max(steps, 1)
                m["losses"] = custom if custom is not None else {k: v / n for k, v in sums.items()}
                m["diagnostics"] = {k: v / n for k, v in logs.items()}
                m["train_s"] = train_s
                m["batch_size"] = ts.batch_size
                m["wall_s"] = time.perf_counter() - t0
                ts.history.append(m)
                score = float(epoch) if t.selection == "last" else m["selection"][t.selection]
                improved = ts.best is None or score > ts.best[0]
                if improved:
                    ts.best = (score, epoch + 1)
                self.on_event(ev.EpochEnd(epoch=epoch + 1, metrics=m))
                # "best" only where a score picks the epoch: with `last` the last file is the reported one
                self.on_event(ev.PredictionsReady(epoch=epoch + 1, best=improved and t.selection != "last",
                                                  tables=self.evaluator.last_predictions, spec=self.spec.to_dict()))
                if epoch == self.n_epochs - 1:
                    self.hooks.finish(self.ctx)
                emb = self.phases.timed("embedding", self.embedding, epoch)
                if emb is not None:
                    self.on_event(emb)
                if self.checkpointer is not None:
                    saved = self.phases.timed("checkpoint", self.checkpointer.save, ts, self.model_meta(), epoch + 1,
                                              best=improved)
                    for e in saved:
                        self.on_event(e)
        except _Stopped as s:
            result.status = "cancelled"
            result.reason = f"stopped during epoch {s.epoch + 1}"
            self.on_event(ev.RunCancelled(epoch=s.epoch))
        except (Diverged, RunAborted) as e:
            result.status, result.reason = "failed", str(e)
            self.on_event(ev.RunFailed(reason=str(e), epoch=len(ts.history)))
        result.epochs_done = len(ts.history)
        result.selection, result.batch_size = t.selection, ts.batch_size
        if ts.history:
            chosen = next(h for h in ts.history if ts.best and h["epoch"] == ts.best[1])
            result.best_epoch = chosen["epoch"]
            result.source_acc, result.target_acc = chosen["source_acc"], chosen["target_acc"]
            result.last_target_acc = ts.history[-1]["target_acc"]
            result.target_n = chosen.get("target_n", 0)
            result.target_acc_ci = accuracy_ci(result.target_acc, result.target_n)
            result.target_eval = self.data.target_eval
            result.target_acc_estimate = chosen.get("target_acc_estimate")
            result.target_acc_estimate_ci = chosen.get("target_acc_estimate_ci")
        result.train_s = train_s
        result.wall_s = time.perf_counter() - t0
        self.phases["training"] = train_s
        result.phases = {k: round(v, 3) for k, v in self.phases.items()}
        if result.status == "finished":
            self.on_event(ev.RunFinished(result=result.to_dict()))
        return result


class _Stopped(Exception):
    def __init__(self, epoch: int):
        self.epoch = epoch


def train(config: RunConfig, **kw) -> RunResult:
    """Train one run in this process, outside the run store (tests and benchmarks; runs of the app and the
    CLI train in a worker, `runs.worker`)."""
    return Trainer(config, **kw).fit()
