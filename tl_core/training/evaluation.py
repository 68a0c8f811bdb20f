"""What a run measures: features and predictions of its model in eval mode (batched, with the run's
AMP, from the frozen-prefix cache when there is one), the metrics of each epoch, and the feature map.
The trainer calls it after each epoch; methods reach `backbone_features` through their `RunContext`."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from tl_core.base import events as ev
from tl_core.data.loaders import RunData, interim_sample, stratified_pick
from tl_core.scores.embed import embed_epoch
from tl_core.base.inputs import InputSpec, adapt
from tl_core.scores.metrics import atc_estimate, classification_report, gaussian_mmd, proxy_a_distance, selection_scores
from tl_core.models.prefix_cache import PrefixCache
from tl_core.scores.stats import pack_bits
from tl_core.data import thumbs


class Evaluator:
    """Evaluation of one run's model on its data. `hooks`/`ctx` (the method's, for a method that keeps
    its own features or swaps statistics for the target) and `prefix_cache` are set by the trainer."""

    def __init__(self, model: torch.nn.Module, data: RunData, spec: InputSpec, device: torch.device,
                 channels_last: bool, amp: bool, amp_dtype: torch.dtype, embed_points: int, seed: int):
        self.model, self.data, self.spec, self.device = model, data, spec, device
        self.channels_last, self.amp, self.amp_dtype = channels_last, amp, amp_dtype
        self.hooks: Any = None
        self.ctx: Any = None
        self.prefix_cache: PrefixCache | None = None
        k = len(data.classes)
        ge = torch.Generator().manual_seed(seed + 99)
        per = max(1, embed_points // k)  # the map's points: the same images every epoch, every class
        self.embed_idx_s = stratified_pick(data.source.y_test, per, k, ge)
        self.embed_idx_t = stratified_pick(data.y_target_test, per, k, ge)
        # the fixed sample an interim epoch reads of each split, the map's points first: (rows, their places)
        gi = torch.Generator().manual_seed(seed + 98)
        self.last_predictions: dict[str, dict[str, Any]] = {}
        self.interim = {"source/test": interim_sample(len(data.source.y_test), self.embed_idx_s, gi),
                        "target/test": interim_sample(len(data.y_target_test), self.embed_idx_t, gi),
                        "source/val": interim_sample(len(data.src_val), torch.zeros(0, dtype=torch.long), gi)}

    @torch.no_grad()
    def backbone_features(self, x_uint8: torch.Tensor, batch: int = 512) -> torch.Tensor:
        """Backbone features of uint8 images, in eval mode."""
        bb = self.model.backbone
        return self._batched(x_uint8, batch, lambda x: bb.features(
            adapt(x, self.spec, self.device, channels_last=self.channels_last)))

    @torch.no_grad()
    def features_from_cache(self, key: str, batch: int = 512, rows: torch.Tensor | None = None) -> torch.Tensor | None:
        """Backbone features of an evaluation split (of its `rows`, when given) from the frozen-prefix cache
        (None: not cached)."""
        c = self.prefix_cache
        if c is None or key not in ("source/test", "source/val", "target/test"):
            return None
        h = c.rows("source/train", self.data.src_val) if key == "source/val" else c.store[key]
        return self._batched(h if rows is None else h[rows], batch, self.model.backbone.features_from_prefix)

    def _batched(self, xs: torch.Tensor, batch: int, features: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """`features` of `xs` batch by batch, in eval mode, on the CPU."""
        self.model.eval()
        feats = []
        for i in range(0, len(xs), batch):
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                feats.append(features(xs[i:i + batch]).float().cpu())
        self.model.train()
        return torch.cat(feats) if feats else torch.zeros(0, self.model.backbone.feat_dim)

    @torch.no_grad()
    def predict_features(self, x_uint8: torch.Tensor, key: str = "",
                         rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) for uint8 images (those at `rows`, when given), in eval mode; `key` names the
        split for the frozen-prefix cache and for methods that cache features of a frozen backbone."""
        f = self.hooks.cached_features(self.ctx, key, x_uint8) if key else None
        if f is not None and rows is not None:
            f = f[rows]
        if f is None and key:
            f = self.features_from_cache(key, rows=rows)
        if f is None:
            f = self.backbone_features(x_uint8 if rows is None else x_uint8[rows])
        self.model.eval()
        head = next(self.model.head.parameters())
        logits = self.model.head(f.to(head.device, head.dtype)).float().cpu()
        self.model.train()
        return f, logits

    def evaluate(self, epoch: int, full: bool = True) -> dict[str, Any]:
        """The epoch's metrics: accuracies on the source and target test splits and the source hold-out,
        which target images were right, per-class reports and confusion, the label-free selection scores,
        and the domain gap (A-distance, MMD) on the features of the embedding's points. `full` False: an
        interim epoch, read on each split's fixed sample (`data.interim_sample`; `target_n` says how many)."""
        d, k = self.data, len(self.data.classes)
        rows = {key: (None if full else r) for key, (r, _) in self.interim.items()}
        pos_s, pos_t = ((self.embed_idx_s, self.embed_idx_t) if full else
                        (self.interim["source/test"][1], self.interim["target/test"][1]))
        fs, ls = self.predict_features(d.source.x_test, "source/test", rows["source/test"])
        lv, ft, lt = self._val_and_target(rows)
        ys, yt = _take(d.source.y_test, rows["source/test"]), _take(d.y_target_test, rows["target/test"])
        yv = _take(d.source.y_train[d.src_val], rows["source/val"])
        src = classification_report(ys, ls.argmax(1), k)
        tgt = classification_report(yt, lt.argmax(1), k)
        val_acc = float((lv.argmax(1) == yv).float().mean())
        es, et = fs[pos_s].numpy(), ft[pos_t].numpy()
        m = {
            "epoch": epoch + 1, "classes": list(d.classes),
            "source_acc": src["acc"], "target_acc": tgt["acc"], "source_val_acc": val_acc,
            "source_n": len(ys), "target_n": len(yt),
            # which target images were right: a gain's interval pairs two runs image by image
            "target_correct": pack_bits((lt.argmax(1) == yt).numpy()),
            "selection": selection_scores(lt.numpy(), val_acc),
            "source_per_class": src["per_class"], "target_per_class": tgt["per_class"],
            "target_confusion": tgt["confusion"],
            "a_distance": proxy_a_distance(es, et, seed=epoch), "mmd": gaussian_mmd(es, et),
        }
        # what the target accuracy is likely to be, read without a target label (beside the measured one
        # where labels exist, as its check; alone where they do not)
        # (a full reading's alone: a run reports it from the epoch it reports, which reads every image)
        est, ci = atc_estimate(lv.numpy(), yv.numpy(), lt.numpy(), seed=epoch) if full else (float("nan"), None)
        ok = np.isfinite(est)
        m["target_acc_estimate"], m["target_acc_estimate_ci"] = (est, ci) if ok else (None, None)
        if not full:
            m["sampled"] = True
        # what each image got, for the confusion cells, class rows and map points that open their images
        self.last_predictions = {"source": thumbs.predictions_table(rows["source/test"], ys, ls),
                                 "target": thumbs.predictions_table(rows["target/test"], yt, lt)}
        self._last_embed = (es, et, ls[pos_s].argmax(1).numpy(), lt[pos_t].argmax(1).numpy())
        return m

    def _val_and_target(self, rows: dict[str, torch.Tensor | None] | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(source hold-out logits, target test features, target test logits), of the `rows` of each split when
        given, the target read as the method reads it."""
        d, rows = self.data, rows or {}
        _, lv = self.predict_features(d.source.x_train[d.src_val], "source/val", rows.get("source/val"))
        with self.hooks.target_eval(self.ctx):
            ft, lt = self.predict_features(d.target.x_test, "target/test", rows.get("target/test"))
        return lv, ft, lt

    def readout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What the label-free validators read of the model as it is now: source hold-out logits and labels,
        target test features and logits (the advisor's probes)."""
        lv, ft, lt = self._val_and_target()
        return lv.numpy(), self.data.source.y_train[self.data.src_val].numpy(), ft.numpy(), lt.numpy()

    def embedding(self, epoch: int, kind: str, previous: Any, seed: int) -> tuple[ev.EmbeddingReady | None, Any]:
        """The 2-D map of the last evaluation's features (`kind`: tsne, pca or none), continued from the
        previous epoch's map so that points move rather than jump; (event, the map's state to keep)."""
        if kind == "none":
            return None, previous
        es, et, ps, pt = self._last_embed
        xy, previous = embed_epoch(np.concatenate([es, et]), kind, previous, seed=seed,
                                   n_jobs=torch.get_num_threads())
        n = len(es)
        d = self.data
        labels = np.concatenate([d.source.y_test[self.embed_idx_s].numpy(), d.y_target_test[self.embed_idx_t].numpy()])
        return ev.EmbeddingReady(epoch=epoch + 1, method=kind, points={
            "x": xy[:, 0].round(3).tolist(), "y": xy[:, 1].round(3).tolist(),
            "domain": ["source"] * n + ["target"] * len(et),
            "label": labels.tolist(), "pred": np.concatenate([ps, pt]).tolist(),
            # each point's image: its row in its domain's test split (`thumbs`)
            "row": torch.cat([self.embed_idx_s, self.embed_idx_t]).tolist()}), previous


def _take(y: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    return y if rows is None else y[rows]
