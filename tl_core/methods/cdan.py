"""CDAN: adversarial alignment conditioned on the classifier's predictions."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tl_core.methods.base import Method, Param, Step, discriminator, entropy, grl, register_method


def multilinear(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Outer product f ⊗ g per row, flattened: (N, D) x (N, K) -> (N, D*K)."""
    return torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).flatten(1)


def entropy_weights(p: torch.Tensor) -> torch.Tensor:
    """CDAN+E: w = 1 + exp(-H(p)), normalised to mean 1 within each domain's half of the batch."""
    w = 1.0 + torch.exp(-entropy(p))
    n = len(w) // 2
    return torch.cat([w[:n] / w[:n].mean(), w[n:] / w[n:].mean()])


@register_method("cdan")
class CDAN(Method):
    """Conditional domain-adversarial network (Long et al., 2018, arXiv:1705.10667).

    L = CE(C(f_s), y_s) + lambda * 1/2 * sum over domains d of sum_{i in d} (w_i / sum_{j in d} w_j) * BCE(D(GRL(f_i ⊗ g_i)), d_i)
    g = softmax(C(f)) (detached); with entropy conditioning (CDAN+E) w_i = 1 + exp(-H(g_i)),
    so confident predictions weigh more; without it w_i = 1 and the domain term is the plain mean BCE.
    The weights are normalised within each domain, so the source and target halves count equally.
    """

    label = "Conditional adversarial alignment (CDAN)"
    family = "adversarial"
    summary = ("Like DANN, a discriminator tries to tell the domains apart, but it sees the features together "
               "with the classifier's predictions (their outer product), so it aligns each class with the same "
               "class across domains instead of the whole clouds. With entropy conditioning (CDAN+E), "
               "confidently classified images count more.")
    formula = ("L = CE(C(f_s), y_s) + λ · ½ Σ_domains Σᵢ (wᵢ / Σⱼ wⱼ) · BCE(D(GRL(fᵢ ⊗ gᵢ)), dᵢ),  "
               "wᵢ = 1 + e^(−H(gᵢ)) normalised within each domain")
    helps = "Multimodal data (several classes) where DANN's global alignment mixes classes up."
    hurts = "Early, wrong predictions condition the alignment: on a hard shift it can lock in mistakes."
    paper = "Long et al., Conditional Adversarial Domain Adaptation, NeurIPS 2018, arXiv:1705.10667"
    params = {
        "trade_off": Param(1.0, 0.0, 10.0, "λ, weight of the domain loss"),
        "entropy": Param(True, help="entropy conditioning (CDAN+E)"),
        "hidden": Param(500, 16, 4096, "width of the discriminator's hidden layers"),
        "batch_norm": Param(False, help="BatchNorm in the discriminator's hidden layers (steadier on ImageNet "
                            "features; the planner turns it on for a pretrained backbone)"),
        "gamma": Param(10.0, 0.0, 100.0, "speed of the gradient-reversal warm-up schedule (0: full strength at once)"),
    }

    def build(self, feat_dim, num_classes):
        self.modules["disc"] = discriminator(feat_dim * num_classes, self.p["hidden"], batch_norm=self.p["batch_norm"])
        return self.modules

    def losses(self, step: Step):
        f = torch.cat([step.f_s, step.f_t])
        g = torch.cat([step.logits_s, step.logits_t]).softmax(1).detach()
        c = self.ramp(step.progress)
        d = self.modules["disc"](grl(multilinear(f, g), c)).squeeze(1)
        labels = torch.cat([torch.ones(len(step.f_s)), torch.zeros(len(step.f_t))]).to(d)
        w = entropy_weights(g) if self.p["entropy"] else torch.ones_like(d)
        dom = (w * F.binary_cross_entropy_with_logits(d, labels, reduction="none")).mean()
        step.log["domain_acc"] = float(((d > 0).float() == labels).float().mean())
        return {**self.supervised(step), "domain": self.p["trade_off"] * dom}
