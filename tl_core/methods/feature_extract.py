"""Feature extraction: a frozen backbone's features, computed once, and a new head on top."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
import torch.nn.functional as F

from tl_core.base.errors import ConfigError
from tl_core.base.paths import atomic_write_bytes, cache_dir
from tl_core.methods.base import register_method, Param, RunContext, Step, HookedMethod

HEADS = ("logreg", "svm", "linear")


@register_method("feature_extract")
class FeatureExtract(HookedMethod):
    """Feature extraction + a new head (Donahue et al., 2014; Razavian et al., 2014).

    The whole backbone f is frozen; f(x) is computed once per image and cached (in memory and on
    disk, keyed by backbone, weights and images), then only the head C is fitted:
    logistic regression or a linear SVM (scikit-learn, closed-form fit, folded into C's weights),
    or a linear layer trained by the run's optimizer on the cached features.
    """

    label = "Feature extraction + new head"
    family = "feature transfer"
    summary = ("Uses the pretrained backbone as a fixed feature extractor: every image goes through it once, "
               "and only a new linear classifier is fitted on those features. The fastest transfer there is, "
               "and a strong baseline when the pretrained features already separate the classes.")
    formula = "θ_f frozen;  C = argmin_C Σ_i ℓ(C(f(x_i)), y_i) + R(C),  ℓ: logistic / hinge / cross-entropy"
    helps = "Pretrained features fit the task and labelled data are few: nothing can over-fit but the head."
    hurts = "Random-init backbones (the features are noise) or targets unlike the pretraining data."
    paper = "Donahue et al., DeCAF: A Deep Convolutional Activation Feature for Generic Visual Recognition, ICML 2014, arXiv:1310.1531"
    needs_pixels = True  # it keeps its own cache of the whole backbone's features
    uses_target_data = False
    params = {
        "head": Param("logreg", help="logreg: logistic regression; svm: linear SVM; linear: a linear layer "
                      "trained with the run's optimizer", choices=HEADS),
        "C": Param(1.0, 1e-4, 1e4, "inverse regularisation strength of logreg / svm", log=True),
    }

    @classmethod
    def check(cls, config) -> None:
        if config.model.bottleneck:
            raise ConfigError("Feature extraction fits its head on the backbone's own features, computed once: a "
                              "bottleneck layer would stay at its random weights. Set bottleneck to 0.")

    def bind(self, ctx: RunContext) -> None:
        bb = ctx.model.backbone
        bb.freeze(len(bb.stages))  # the whole backbone is fixed: that is what makes caching valid
        for p in bb.parameters():
            p.requires_grad_(False)
        self.cache: dict[str, torch.Tensor] = {}
        self.computed: list[str] = []  # which splits actually went through the backbone (tests read it)
        cfg = ctx.config
        self._key = {"backbone": bb.name, "pretrained": bool(bb.pretrained), "spec": ctx.spec.to_dict(),
                     "seed": None if bb.pretrained else cfg.train.seed}
        self._sources = {"source": cfg.data.source, "target": cfg.data.target}

    def epochs(self, configured: int) -> int:
        return configured if self.p["head"] == "linear" else 1

    # -- the feature cache ----------------------------------------------------------
    def _features(self, ctx: RunContext, key: str, images) -> torch.Tensor:
        """Features of one split; `images` (a callable) is only called when the split is not cached."""
        if key in self.cache:
            return self.cache[key]
        from safetensors.torch import load_file, save

        x = images()
        domain = self._sources[key.split("/")[0]]
        ident = json.dumps({**self._key, "domain": domain, "split": key, "n": len(x),
                            "images": hashlib.sha1(x.numpy().tobytes()).hexdigest()}, sort_keys=True)
        path = cache_dir("features") / (hashlib.sha1(ident.encode()).hexdigest()[:20] + ".safetensors")
        f = None
        if path.exists():
            try:
                f = load_file(str(path))["features"]
            except Exception:  # noqa: BLE001 - a damaged cache file is recomputed, never trusted
                f = None
        if f is None or len(f) != len(x):
            f = ctx.features(x)
            self.computed.append(key)
            atomic_write_bytes(path, save({"features": f.contiguous()}))
        self.cache[key] = f
        return f

    def _source_train(self, ctx: RunContext) -> torch.Tensor:
        """Features of the source train split, its validation part last (one pass for both)."""
        d = ctx.data
        return self._features(ctx, "source/train", lambda: d.source.x_train[torch.cat([d.src_train, d.src_val])])

    def cached_features(self, ctx: RunContext, key: str, x: torch.Tensor) -> torch.Tensor | None:
        if key == "source/val":
            return self._source_train(ctx)[len(ctx.data.src_train):]
        return self._features(ctx, key, lambda: x)

    def _train_set(self, ctx: RunContext) -> tuple[torch.Tensor, torch.Tensor]:
        d = ctx.data
        fx, y = [self._source_train(ctx)[: len(d.src_train)]], [d.source.y_train[d.src_train]]
        if len(d.tgt_labelled):
            fx.append(self._features(ctx, "target/labelled", lambda: d.target.x_train[d.tgt_labelled]))
            y.append(d.y_target_train[d.tgt_labelled])
        return torch.cat(fx), torch.cat(y)

    # -- fitting the head -----------------------------------------------------------
    def run_epoch(self, ctx: RunContext, epoch: int) -> dict[str, float]:
        x, y = self._train_set(ctx)
        head = ctx.model.head
        if self.p["head"] == "linear":
            return self._sgd_epoch(ctx, x, y, epoch)
        w, b = self._sklearn_fit(x.numpy().astype(np.float64), y.numpy(), head.out_features)
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(w, dtype=head.weight.dtype))
            head.bias.copy_(torch.as_tensor(b, dtype=head.bias.dtype))
            loss = F.cross_entropy(head(x.to(head.weight.device)), y.to(head.weight.device))
        return {"source_ce": float(loss)}

    def _sklearn_fit(self, x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Fit on standardised features, then fold the scaling into a linear layer's weights."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC

        mu, sd = x.mean(0), x.std(0) + 1e-6
        z = (x - mu) / sd
        if self.p["head"] == "logreg":
            clf = LogisticRegression(C=self.p["C"], max_iter=2000)
        else:
            clf = LinearSVC(C=self.p["C"], max_iter=5000)
        clf.fit(z, y)
        coef, icpt = np.zeros((k, x.shape[1])), np.full(k, -1e4)  # classes absent from training never win
        if clf.coef_.shape[0] == 1:  # two classes: one score for the second; logits [0, s]
            coef[clf.classes_[1]], icpt[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
            icpt[clf.classes_[0]] = 0.0
        else:
            coef[clf.classes_], icpt[clf.classes_] = clf.coef_, clf.intercept_
        w = coef / sd
        return w, icpt - (coef * (mu / sd)).sum(1)

    def _sgd_epoch(self, ctx: RunContext, x: torch.Tensor, y: torch.Tensor, epoch: int) -> dict[str, float]:
        """The head trained by the run's own optimizer and schedule on the cached features."""
        head, opt, t, n = ctx.model.head, ctx.optimizer, ctx.config.train, ctx.steps_per_epoch
        g = torch.Generator().manual_seed(t.seed * 1000 + epoch)
        dev = head.weight.device
        total = 0.0
        for s in range(n):
            ctx.set_lrs((epoch * n + s) / ctx.total_steps)
            i = torch.randint(len(x), (t.batch_size,), generator=g)
            loss = F.cross_entropy(head(x[i].to(dev)), y[i].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        return {"source_ce": total / max(n, 1)}

    def losses(self, step: Step):
        return self.supervised(step)  # not reached: run_epoch replaces the step loop
