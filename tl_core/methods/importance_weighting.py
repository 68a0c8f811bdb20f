"""Importance weighting: source samples reweighted by an estimated density ratio."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tl_core.methods.base import Method, Param, Step, discriminator, register_method


def density_ratio_weights(domain_logits_s: torch.Tensor, clip: float) -> torch.Tensor:
    """w(x) = p_t(x) / p_s(x) ≈ P(target | x) / P(source | x) = exp(logit) for a domain classifier
    trained on equal numbers of each, clipped at `clip` and normalised to mean 1 over the batch."""
    w = domain_logits_s.detach().float().exp().clamp(max=clip)
    return w / w.mean().clamp_min(1e-12)


@register_method("importance_weighting")
class ImportanceWeighting(Method):
    """Instance transfer by density-ratio weighting (Shimodaira, 2000; Bickel et al., 2007).

    A domain classifier D on detached features estimates w(x) = P(t|x) / P(s|x); the source loss
    becomes mean_i w(x_i)·CE(C(f(x_i)), y_i), so source images that look like the target count more.
    """

    label = "Importance weighting"
    family = "instance transfer"
    summary = ("Estimates, for every source image, how much more likely it would be in the target than in the "
               "source (with a small domain classifier), and weighs its training loss by that ratio: the model "
               "concentrates on the source images that resemble the target.")
    formula = "L = mean_i w(x_i)·CE(C(f(x_i)), y_i) + BCE(D(f̄)),  w(x) = P(t|x)/P(s|x) (clipped, mean 1)"
    helps = "Covariate shift where the target's images also occur in the source, only more rarely."
    hurts = "The domains barely overlap (e.g. MNIST vs SVHN): a few source images get all the weight."
    paper = "Shimodaira, Improving predictive inference under covariate shift by weighting the log-likelihood function, J. Stat. Plan. Inference 2000"
    params = {
        "clip": Param(10.0, 1.0, 100.0, "largest weight one source image may get"),
        "hidden": Param(256, 16, 4096, "width of the domain classifier"),
    }

    def build(self, feat_dim: int, num_classes: int) -> nn.ModuleDict:
        self.modules["domain"] = discriminator(feat_dim, self.p["hidden"])
        return self.modules

    def losses(self, step: Step):
        n = len(step.f_s)
        # the domain classifier learns on detached features: it measures the shift, it does not remove it
        d = self.modules["domain"](torch.cat([step.f_s, step.f_t]).detach()).squeeze(1)
        y_d = torch.cat([torch.zeros(n), torch.ones(len(step.f_t))]).to(d)
        w = density_ratio_weights(d[:n], self.p["clip"])
        out = {"source_ce": (F.cross_entropy(step.logits_s, step.y_s, reduction="none") * w).mean(),
               "domain_bce": F.binary_cross_entropy_with_logits(d, y_d), **self.target_supervised(step)}
        step.log["weight_max"] = float(w.max())
        return out
