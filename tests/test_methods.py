"""Every method's loss against an independent numpy reference, plus a known invariant."""
import math

import numpy as np
import pytest
import torch

from tl_core.methods import Step, get_method, list_methods, warm_start
from tl_core.methods.coral import coral_loss
from tl_core.methods.mmd import mk_mmd

D, K, B = 16, 5, 12


def make_step(seed=0, progress=0.5, labelled=True, shift=1.0):
    g = torch.Generator().manual_seed(seed)
    f_s = torch.randn(B, D, generator=g, requires_grad=True)
    f_t = (torch.randn(B, D, generator=g) + shift).requires_grad_(True)
    f_tl = torch.randn(4, D, generator=g).requires_grad_(True)
    w = torch.randn(D, K, generator=g)
    return Step(f_s=f_s, logits_s=f_s @ w, y_s=torch.randint(0, K, (B,), generator=g),
                f_t=f_t, logits_t=f_t @ w,
                f_tl=f_tl if labelled else None, logits_tl=(f_tl @ w) if labelled else None,
                y_tl=torch.randint(0, K, (4,), generator=g) if labelled else None, progress=progress)


def np_ce(logits, y):
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def np_bce_logits(z, d):
    p = 1 / (1 + np.exp(-z))
    return float(-(d * np.log(p) + (1 - d) * np.log(1 - p)).mean())


def np_mk_mmd(a, b, alphas=(0.125, 0.25, 0.5, 1.0, 2.0)):
    z = np.concatenate([a, b]).astype(np.float64)
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    s = d2.mean()
    k = sum(np.exp(-d2 / (2 * al * s)) for al in alphas)
    n = len(a)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def np_coral(a, b):
    ma, mb = a.mean(0), b.mean(0)
    return ((ma - mb) ** 2).mean() + ((np.cov(a, rowvar=False) - np.cov(b, rowvar=False)) ** 2).mean()


def build(name, **params):
    m = get_method(name)(params)
    m.build(D, K)
    return m


# -- registry-wide checks -----------------------------------------------------------

@pytest.mark.parametrize("name", list_methods())
def test_method_metadata_is_complete(name):
    info = get_method(name).describe()
    for key in ("label", "summary", "formula", "paper", "helps", "hurts"):
        assert info[key], f"{name} lacks {key}"
    assert get_method(name).__doc__, f"{name} has no docstring with its formula"
    for pname, p in info["params"].items():
        assert p["help"], f"{name}.{pname} has no help text"
        if p["low"] is not None:
            assert p["low"] <= p["default"] <= p["high"]


@pytest.mark.parametrize("name", list_methods())
def test_losses_are_finite_named_scalars_with_gradients(name):
    m = build(name)
    step = make_step(progress=0.9)
    terms = m.losses(step)
    assert terms and all(t.ndim == 0 and torch.isfinite(t) for t in terms.values())
    sum(terms.values()).backward()
    grads = [step.f_s.grad, step.f_t.grad, step.f_tl.grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


# -- per-method references ----------------------------------------------------------

def test_source_only_is_cross_entropy():
    step = make_step()
    terms = build("source_only").losses(step)
    assert set(terms) == {"source_ce"}
    ref = np_ce(step.logits_s.detach().numpy(), step.y_s.numpy())
    assert terms["source_ce"].item() == pytest.approx(ref, rel=1e-5)


def test_supervised_terms_include_labelled_target():
    step = make_step()
    terms = build("mmd").losses(step)
    assert terms["target_ce"].item() == pytest.approx(np_ce(step.logits_tl.detach().numpy(), step.y_tl.numpy()), rel=1e-5)


def test_finetune_switches_phase_and_slows_the_backbone():
    m = build("finetune", source_phase=0.5, backbone_lr=0.1)
    early, late = make_step(progress=0.2), make_step(progress=0.8)
    assert set(m.losses(early)) == {"source_ce"}
    t = m.losses(late)
    assert set(t) == {"target_ce"}
    assert t["target_ce"].item() == pytest.approx(np_ce(late.logits_tl.detach().numpy(), late.y_tl.numpy()), rel=1e-5)
    assert m.lr_multipliers(0.2)["backbone"] == 1.0 and m.lr_multipliers(0.8)["backbone"] == pytest.approx(0.1)


def test_dann_domain_loss_matches_numpy_bce():
    m = build("dann", trade_off=0.7)
    m.modules.eval()
    step = make_step()
    terms = m.losses(step)
    with torch.no_grad():
        z = m.modules["disc"](torch.cat([step.f_s, step.f_t])).squeeze(1).numpy()
    d = np.r_[np.ones(B), np.zeros(B)]
    assert terms["domain"].item() == pytest.approx(0.7 * np_bce_logits(z, d), rel=1e-5)


def test_dann_reverses_the_gradient_into_the_features():
    m = build("dann", trade_off=1.0)
    m.modules.eval()
    step = make_step(progress=0.3)
    m.losses(step)["domain"].backward()
    g_rev = step.f_s.grad.clone()
    # the same loss without reversal
    f = step.f_s.detach().requires_grad_(True)
    z = m.modules["disc"](torch.cat([f, step.f_t.detach()])).squeeze(1)
    torch.nn.functional.binary_cross_entropy_with_logits(z, torch.cat([torch.ones(B), torch.zeros(B)])).backward()
    c = warm_start(0.3)
    assert torch.allclose(g_rev, -c * f.grad, atol=1e-6)
    assert 0 < c < 1 and warm_start(0.0) == 0.0 and math.isclose(warm_start(1.0), 1, abs_tol=1e-4)


def test_mmd_matches_numpy_and_vanishes_on_identical_batches():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(20, D, generator=g), torch.randn(20, D, generator=g) + 0.5
    assert mk_mmd(a, b).item() == pytest.approx(np_mk_mmd(a.numpy(), b.numpy()), rel=1e-4)
    assert abs(mk_mmd(a, a.clone()).item()) < 1e-6
    assert mk_mmd(a, b + 2).item() > mk_mmd(a, b).item() > 0


def test_coral_matches_numpy_and_vanishes_on_identical_batches():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(30, D, generator=g), torch.randn(30, D, generator=g) * 2 + 1
    assert coral_loss(a, b).item() == pytest.approx(np_coral(a.numpy(), b.numpy()), rel=1e-4)
    assert coral_loss(a, a[torch.randperm(30)]).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name,term,fn", [("mmd", "mmd", mk_mmd), ("coral", "coral", coral_loss)])
def test_trade_off_and_ramp_scale_the_alignment_term(name, term, fn):
    step = make_step(progress=0.3)
    raw = fn(step.f_s, step.f_t).item()
    assert build(name, trade_off=3.0, gamma=0.0).losses(step)[term].item() == pytest.approx(3 * raw, rel=1e-5)
    assert build(name, trade_off=3.0).losses(step)[term].item() == pytest.approx(3 * warm_start(0.3) * raw, rel=1e-5)
    assert build(name).losses(make_step(progress=0.0))[term].item() == 0.0  # nothing to align at the start
