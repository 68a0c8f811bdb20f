"""Every method's loss against an independent numpy reference, plus a known invariant."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tl_core.methods import Step, get_method, list_methods, warm_start
from tl_core.methods.coral import coral_loss
from tl_core.methods.mmd import mk_mmd
from tl_core.planning.validation import validate

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


class TinyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(6, D)
        self.head = torch.nn.Linear(D, K)


def build(name, model=None, **params):
    m = get_method(name)(params)
    m.build(D, K)
    m.attach(model or TinyModel())
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


# what a method needs beyond a Step to compute its losses in isolation
SETUP = {"pseudo_label": {"strong": False}, "distill": {"teacher": "t"}}
# methods whose step here has no term beyond the cross-entropies: the supervised baselines, AdaBN (it
# re-estimates BatchNorm statistics, no loss) and the source-free ones, whose step here is in their source
# phase (their adaptation terms: tests/integration/test_trainer.py)
SUPERVISED_ONLY = {"source_only", "target_only", "finetune", "feature_extract", "adabn", "shot", "tent"}


@pytest.mark.parametrize("name", list_methods())
def test_losses_are_finite_named_scalars_with_gradients(name):
    m = build(name, **SETUP.get(name, {}))
    if name == "distill":  # a stand-in teacher: fixed logits for the batch
        m.teacher_logits = lambda raw: torch.randn(B, K, generator=torch.Generator().manual_seed(5))
    step = make_step(progress=0.9)
    terms = m.losses(step)
    assert terms and all(t.ndim == 0 and torch.isfinite(t) for t in terms.values())
    extra = {k: v for k, v in terms.items() if k not in ("source_ce", "target_ce")}
    sum(terms.values()).backward()
    for term, f in (("source_ce", step.f_s), ("target_ce", step.f_tl)):
        if term in terms:
            assert f.grad is not None and f.grad.abs().sum() > 0, (name, term)
    # a method adds a term of its own unless it is one of the supervised baselines
    assert bool(extra) != (name in SUPERVISED_ONLY), (name, sorted(terms))
    cls = get_method(name)
    if cls.uses_target_data and extra and name not in NO_FEATURE_GRADIENT:
        # the method's own terms must reach the unlabelled target features (source CE alone never does)
        assert step.f_t.grad is not None and step.f_t.grad.abs().sum() > 0, name


# methods whose extra terms act on their own modules or weights, not on the target features
NO_FEATURE_GRADIENT = {"importance_weighting",  # its domain classifier sees detached features: it measures
                       "l2sp"}  # the penalty is on the weights (tested against numpy below)


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


@pytest.mark.parametrize("name", ["dann", "cdan", "mmd", "mcc", "mcd"])
def test_gamma_zero_means_full_strength_from_the_first_step(name):
    """One meaning of gamma = 0 for every method with a warm-up: no warm-up (it once switched the
    reversal off for DANN and CDAN while their discriminators kept training)."""
    if "gamma" not in get_method(name).params:
        pytest.skip(f"{name} has no warm-up")
    full, ramped = build(name, gamma=0.0), build(name, gamma=10.0)
    assert full.ramp(0.0) == 1.0 and ramped.ramp(0.0) == 0.0
    if name in ("dann", "cdan"):
        ramped.modules.load_state_dict(full.modules.state_dict())
        grads = []
        for m in (full, ramped):
            m.modules.eval()
            step = make_step(progress=0.0)
            m.losses(step)["domain"].backward()
            grads.append(step.f_t.grad.abs().sum().item())
        assert grads[0] > 0 and grads[1] == 0.0  # full strength at once; the warm-up starts at zero


def test_dann_with_gamma_zero_reverses_at_full_strength():
    m = build("dann", trade_off=1.0, gamma=0.0)
    m.modules.eval()
    step = make_step(progress=0.0)
    m.losses(step)["domain"].backward()
    assert step.log["grl_coeff"] == 1.0
    f = step.f_s.detach().requires_grad_(True)
    z = m.modules["disc"](torch.cat([f, step.f_t.detach()])).squeeze(1)
    torch.nn.functional.binary_cross_entropy_with_logits(z, torch.cat([torch.ones(B), torch.zeros(B)])).backward()
    assert torch.allclose(step.f_s.grad, -f.grad, atol=1e-6)


def test_reported_mmd_takes_its_bandwidth_from_distinct_pairs_only():
    """Far from the origin the Gram-trick self-distances are rounding noise, not zeros; the median
    heuristic must not count them."""
    from tl_core.scores.metrics import gaussian_mmd

    rng = np.random.default_rng(0)
    a, b = 1000 + rng.normal(size=(40, 8)), 1000.5 + rng.normal(size=(40, 8))
    x = np.concatenate([a, b])
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    k = np.exp(-d2 / np.median(d2[np.triu_indices(len(x), 1)]))
    ref = k[:40, :40].mean() + k[40:, 40:].mean() - 2 * k[:40, 40:].mean()
    assert gaussian_mmd(a, b) == pytest.approx(ref, rel=1e-6)


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


# -- issue 5's methods ----------------------------------------------------------------

def np_softmax(z, t=1.0):
    z = z / t
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def np_entropy(p, axis=1):
    return -(p * np.log(np.clip(p, 1e-8, None))).sum(axis)


def test_target_only_uses_the_labelled_target_alone():
    step = make_step()
    terms = build("target_only").losses(step)
    assert set(terms) == {"target_ce"}
    assert terms["target_ce"].item() == pytest.approx(np_ce(step.logits_tl.detach().numpy(), step.y_tl.numpy()), rel=1e-5)


def test_l2sp_penalty_is_zero_at_the_start_and_matches_numpy_after_a_move():
    model = TinyModel()
    m = build("l2sp", model=model, alpha=0.5, beta=0.2)
    step = make_step()
    t = m.losses(step)
    assert t["l2sp"].item() == 0.0
    head_np = sum((p.detach().numpy() ** 2).sum() for p in model.head.parameters())
    assert t["head_l2"].item() == pytest.approx(0.1 * head_np, rel=1e-5)
    start = [p.detach().numpy().copy() for p in model.backbone.parameters()]
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(0.3)
    ref = sum(((p.detach().numpy() - s) ** 2).sum() for p, s in zip(model.backbone.parameters(), start))
    assert m.losses(step)["l2sp"].item() == pytest.approx(0.25 * ref, rel=1e-4)


def test_cdan_matches_numpy_weighted_bce_and_reverses_gradients():
    from tl_core.methods.cdan import entropy_weights, multilinear

    m = build("cdan", trade_off=0.5)
    m.modules.eval()
    step = make_step(progress=0.4)
    terms = m.losses(step)
    f = torch.cat([step.f_s, step.f_t]).detach()
    g = torch.cat([step.logits_s, step.logits_t]).detach().softmax(1)
    outer = np.einsum("nk,nd->nkd", g.numpy(), f.numpy()).reshape(len(f), -1)
    assert np.allclose(multilinear(f, g).numpy(), outer, atol=1e-6)
    w = 1 + np.exp(-np_entropy(g.numpy()))
    w = np.r_[w[:B] / w[:B].mean(), w[B:] / w[B:].mean()]
    assert np.allclose(entropy_weights(g).numpy(), w, atol=1e-6)
    with torch.no_grad():
        z = m.modules["disc"](torch.from_numpy(outer).float()).squeeze(1).numpy()
    d = np.r_[np.ones(B), np.zeros(B)]
    p = 1 / (1 + np.exp(-z))
    ref = (w * -(d * np.log(p) + (1 - d) * np.log(1 - p))).mean()
    assert terms["domain"].item() == pytest.approx(0.5 * ref, rel=1e-5)
    terms["domain"].backward()
    # the features get the reversed gradient of the same weighted loss (g and w held constant)
    fz = f.clone().requires_grad_(True)
    zz = m.modules["disc"](multilinear(fz, g)).squeeze(1)
    wt, dt = torch.from_numpy(w).float(), torch.from_numpy(d).float()
    plain_loss = 0.5 * (wt * torch.nn.functional.binary_cross_entropy_with_logits(zz, dt, reduction="none")).mean()
    plain_loss.backward()
    c = warm_start(0.4)
    assert torch.allclose(step.f_s.grad, -c * fz.grad[:B], atol=1e-6)
    assert torch.allclose(step.f_t.grad, -c * fz.grad[B:], atol=1e-6)
    plain = build("cdan", entropy=False)
    plain.modules.load_state_dict(m.modules.state_dict())
    plain.modules.eval()
    unweighted = plain.losses(make_step(progress=0.4))["domain"].item()
    assert unweighted == pytest.approx(np_bce_logits(z, d), rel=1e-5)


def np_mcc(logits, t, w=None):
    n, k = logits.shape
    p = np_softmax(logits, t)
    if w is None:
        w = 1 + np.exp(-np_entropy(p))
        w = n * w / w.sum()
    c = (p * w[:, None]).T @ p
    c = c / c.sum(1, keepdims=True)
    return (c.sum() - np.trace(c)) / k


def test_mcc_matches_numpy_and_vanishes_for_decisive_distinct_predictions():
    from tl_core.methods.mcc import mcc_loss

    step = make_step()
    z = step.logits_t.detach()
    assert mcc_loss(z, 2.5).item() == pytest.approx(np_mcc(z.numpy(), 2.5), rel=1e-4)
    decisive = torch.eye(K).repeat(3, 1) * 100.0
    assert mcc_loss(decisive, 2.5).item() < 1e-6
    ref = np_mcc(z.numpy(), 2.5)
    w = warm_start(step.progress, 10.0)  # the ramp of the weight
    assert build("mcc", trade_off=2.0).losses(step)["mcc"].item() == pytest.approx(2 * w * ref, rel=1e-4)
    assert build("mcc", trade_off=2.0, gamma=0.0).losses(step)["mcc"].item() == pytest.approx(2 * ref, rel=1e-4)


def test_mcc_gradient_holds_the_class_weights_constant():
    """Finite differences of the numpy loss with the weights frozen at their current values: the
    gradient of the authors' MCC (weights detached), which differs by several percent otherwise."""
    from tl_core.methods.mcc import mcc_loss

    z = make_step(seed=3).logits_t.detach().double()
    zt = z.clone().requires_grad_(True)
    mcc_loss(zt, 2.5).backward()
    zn = z.numpy()
    p = np_softmax(zn, 2.5)
    w = 1 + np.exp(-np_entropy(p))
    w = len(zn) * w / w.sum()
    num = np.zeros_like(zn)
    eps = 1e-6
    for i in range(zn.shape[0]):
        for j in range(zn.shape[1]):
            up, dn = zn.copy(), zn.copy()
            up[i, j] += eps
            dn[i, j] -= eps
            num[i, j] = (np_mcc(up, 2.5, w) - np_mcc(dn, 2.5, w)) / (2 * eps)
    assert np.allclose(zt.grad.numpy(), num, rtol=1e-4, atol=1e-8)


def test_information_maximisation_matches_numpy_and_its_extremes():
    from tl_core.methods.entropy_min import im_loss

    z = make_step().logits_t.detach()
    p = np_softmax(z.numpy())
    ent, div = im_loss(z)
    assert ent.item() == pytest.approx(np_entropy(p).mean(), rel=1e-5)
    assert div.item() == pytest.approx(np_entropy(p.mean(0, keepdims=True))[0], rel=1e-5)
    ent_u, div_u = im_loss(torch.zeros(8, K))  # uniform predictions: maximal uncertainty
    assert ent_u.item() == pytest.approx(np.log(K), rel=1e-5) and div_u.item() == pytest.approx(np.log(K), rel=1e-5)
    terms = build("entropy_min", trade_off=0.5, diversity=2.0).losses(make_step())
    assert terms["entropy"].item() == pytest.approx(0.5 * ent.item(), rel=1e-5)
    assert terms["diversity"].item() == pytest.approx(-1.0 * div.item(), rel=1e-5)


# -- issue 5's methods ------------------------------------------------------------------

def test_mcd_discrepancy_matches_numpy_and_the_game_is_split_by_the_reversal():
    from tl_core.methods.mcd import discrepancy

    m = build("mcd", trade_off=2.0, gamma=0.0)  # full reversal strength
    step = make_step()
    c1, c2 = m._heads[0], m.modules["head2"]
    ref = np.abs(np_softmax(c1(step.f_t).detach().numpy()) - np_softmax(c2(step.f_t).detach().numpy())).mean()
    assert discrepancy(c1(step.f_t), c2(step.f_t)).item() == pytest.approx(ref, rel=1e-5)
    terms = m.losses(step)
    assert terms["discrepancy"].item() == pytest.approx(-2.0 * ref, rel=1e-5)
    terms["discrepancy"].backward()
    # the classifiers descend on -d (they maximise d); the features receive the reversed gradient (minimise d)
    f = step.f_t.detach().requires_grad_(True)
    d = discrepancy(c1(f), c2(f))
    (g_f,) = torch.autograd.grad(d, f)
    assert torch.allclose(step.f_t.grad, 2.0 * g_f, atol=1e-6)


def test_mdd_adversary_loss_matches_numpy():
    from tl_core.methods.mdd import mdd_adversary_loss

    g = torch.Generator().manual_seed(3)
    a_s, a_t = torch.randn(B, K, generator=g), torch.randn(B, K, generator=g)
    p_s, p_t = torch.randint(0, K, (B,), generator=g), torch.randint(0, K, (B,), generator=g)
    pt = np_softmax(a_t.numpy())[np.arange(B), p_t.numpy()]
    ref = 4.0 * np_ce(a_s.numpy(), p_s.numpy()) - np.log(1 - pt).mean()
    assert mdd_adversary_loss(a_s, a_t, p_s, p_t, 4.0).item() == pytest.approx(ref, rel=1e-5)
    terms = build("mdd", gamma=0.0).losses(make_step())
    assert set(terms) == {"source_ce", "target_ce", "mdd"}


def test_pseudo_labels_only_count_confident_images():
    from tl_core.methods.pseudo_label import masked_pseudo_ce

    weak = torch.tensor([[10.0, 0, 0], [0.1, 0, 0], [0, 0, 9.0]])
    strong = torch.randn(3, 3, generator=torch.Generator().manual_seed(1))
    loss, mask = masked_pseudo_ce(weak, strong, 0.95)
    assert mask.tolist() == [1.0, 0.0, 1.0]
    ce = [np_ce(strong[i:i + 1].numpy(), np.array([y])) for i, y in ((0, 0), (2, 2))]
    assert loss.item() == pytest.approx(sum(ce) / 3, rel=1e-5)
    assert masked_pseudo_ce(weak, strong, 0.9999999)[0].item() == 0.0


def test_strong_augmentation_keeps_the_shape_and_changes_the_images():
    from tl_core.data.loaders import strong_augment

    x = torch.rand(8, 1, 28, 28)
    y = strong_augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.isfinite(y).all() and (y - x).abs().mean() > 0.05
    assert torch.equal(y, strong_augment(x, torch.Generator().manual_seed(0)))


def test_importance_weights_are_the_clipped_normalised_odds():
    from tl_core.methods.importance_weighting import density_ratio_weights

    z = torch.tensor([0.0, 1.0, -1.0, 5.0])
    w = density_ratio_weights(z, clip=10.0).numpy()
    ref = np.minimum(np.exp(z.numpy()), 10.0)
    assert np.allclose(w, ref / ref.mean(), rtol=1e-5)
    assert np.allclose(density_ratio_weights(torch.zeros(6), 10.0).numpy(), 1.0)  # no shift: plain CE
    m = build("importance_weighting")
    step = make_step()
    terms = m.losses(step)
    d = m.modules["domain"](step.f_s.detach()).squeeze(1)
    ce = torch.nn.functional.cross_entropy(step.logits_s, step.y_s, reduction="none")
    assert terms["source_ce"].item() == pytest.approx((ce * density_ratio_weights(d, 10.0)).mean().item(), rel=1e-5)


def test_adabn_statistics_are_the_target_batch_moments_and_are_restored():
    from tl_core.methods.adabn import bn_state, estimate_bn_stats, load_bn_state

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(50, 4, generator=g) * 3 + 2 for _ in range(4)]
    before = bn_state(net)
    net.train()
    estimate_bn_stats(net, iter(batches))
    with torch.no_grad():
        z = torch.cat([net[0](b) for b in batches]).numpy()
    bn = net[1]
    assert np.allclose(bn.running_mean.numpy(), z.mean(0), atol=1e-4)
    # the cumulative average of per-batch unbiased variances (what BatchNorm tracks)
    per_batch = np.mean([np.var(net[0](b).detach().numpy(), axis=0, ddof=1) for b in batches], axis=0)
    assert np.allclose(bn.running_var.numpy(), per_batch, rtol=1e-4)
    assert net.training and bn.training and bn.momentum == 0.1  # modes and settings untouched
    load_bn_state(net, before)
    assert torch.equal(bn.running_mean, before[0][0])


def test_adabn_refuses_a_backbone_without_batchnorm():
    from tl_core import ConfigError, RunConfig

    cfg = RunConfig().replace(data={"source": "syndigits", "target": "uci_digits"}, method={"name": "adabn"})
    with pytest.raises(ConfigError, match="no BatchNorm"):
        validate(cfg)
    validate(cfg.replace(model={"backbone": "resnet18", "pretrained": False}))


def test_distillation_loss_matches_numpy_kl_and_vanishes_on_the_teacher():
    from tl_core.methods.distill import kd_loss

    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(B, K, generator=g), torch.randn(B, K, generator=g)
    ps, pt = np_softmax(s.numpy() / 3.0), np_softmax(t.numpy() / 3.0)
    ref = 9.0 * (pt * (np.log(pt) - np.log(ps))).sum(1).mean()
    assert kd_loss(s, t, 3.0).item() == pytest.approx(ref, rel=1e-5)
    assert kd_loss(t, t, 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_distill_needs_a_teacher():
    from tl_core import ConfigError, RunConfig

    with pytest.raises(ConfigError, match="needs a teacher"):
        validate(RunConfig().replace(data={"source": "syndigits", "target": "uci_digits"},
                            method={"name": "distill"}))


def test_feature_extract_folds_the_standardisation_into_the_head():
    from sklearn.linear_model import LogisticRegression

    g = np.random.default_rng(0)
    x = g.normal(size=(120, D)) * g.uniform(0.1, 10, size=D) + g.normal(size=D) * 5
    y = np.arange(120) % K
    m = build("feature_extract", head="logreg", C=0.5)
    w, b = m._sklearn_fit(x, y, K)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    ref = LogisticRegression(C=0.5, max_iter=2000).fit((x - mu) / sd, y).decision_function((x - mu) / sd)
    assert np.allclose(x @ w.T + b, ref, atol=1e-6)
    w2, b2 = m._sklearn_fit(x, (y > 1).astype(int), K)  # two classes present out of K
    logits = x @ w2.T + b2
    assert set(logits.argmax(1)) <= {0, 1}


def test_layerwise_finetuning_thaws_from_the_top_with_decaying_rates():
    m = build("finetune", source_phase=0.5, backbone_lr=0.5, layer_decay=0.5, gradual_unfreeze=True)
    m.stages = ["conv1", "conv2", "fc"]
    assert m.lr_multipliers(0.3) == {"backbone": 1.0, "head": 1.0, "method": 1.0}  # phase 1: all together
    early = m.lr_multipliers(0.55)  # phase 2 just begun: only the head
    assert early["backbone.fc"] == early["backbone.conv2"] == early["backbone.conv1"] == 0.0
    mid = m.lr_multipliers(0.5 + 0.5 * 0.6)  # 60% into phase 2: fc and conv2 thawed
    assert mid["backbone.fc"] == pytest.approx(0.5) and mid["backbone.conv2"] == pytest.approx(0.25)
    assert mid["backbone.conv1"] == 0.0
    late = m.lr_multipliers(0.99)
    assert late["backbone.conv1"] == pytest.approx(0.125)
    plain = build("finetune", source_phase=0.5, backbone_lr=0.5)
    plain.stages = ["conv1", "conv2", "fc"]
    assert {plain.lr_multipliers(0.6)[f"backbone.{s}"] for s in plain.stages} == {0.5}


def test_selection_scores_match_numpy_and_their_extremes():
    from tl_core.scores.metrics import im_score, mean_entropy, snd_score

    g = np.random.default_rng(1)
    z = g.normal(size=(40, K)) * 3
    p = np_softmax(z)
    h = -(p * np.log(p)).sum(1)
    pm = p.mean(0)
    assert mean_entropy(z) == pytest.approx(h.mean(), rel=1e-6)
    assert im_score(z) == pytest.approx(-(pm * np.log(pm)).sum() - h.mean(), rel=1e-6)
    f = p / np.linalg.norm(p, axis=1, keepdims=True)
    s = f @ f.T / 0.05
    np.fill_diagonal(s, -np.inf)
    q = np_softmax(s)
    assert snd_score(z) == pytest.approx(float(-(q * np.log(np.clip(q, 1e-12, None))).sum(1).mean()), rel=1e-6)
    decisive = np.eye(K)[np.arange(40) % K] * 50  # confident and balanced: the best IM score, log K
    assert im_score(decisive) == pytest.approx(np.log(K), rel=1e-4)
    assert im_score(np.zeros((40, K))) == pytest.approx(0.0, abs=1e-9)


# -- source-free strategies ----------------------------------------------------------

def test_shot_information_maximisation_matches_numpy():
    from tl_core.methods.shot import information_maximisation

    g = torch.Generator().manual_seed(3)
    z = torch.randn(B, K, generator=g)
    p = np_softmax(z.numpy())
    ent, div = information_maximisation(z)
    assert float(ent) == pytest.approx(np_entropy(p).mean(), rel=1e-5)
    assert float(div) == pytest.approx(float(np_entropy(p.mean(0, keepdims=True))[0]), rel=1e-5)
    # the diversity is largest (log K) when the batch spreads evenly over the classes
    even = torch.eye(K).repeat(2, 1) * 20
    assert float(information_maximisation(even)[1]) == pytest.approx(math.log(K), rel=1e-4)


def test_shot_cluster_labels_fix_the_mistakes_of_a_model_whose_errors_are_a_minority():
    """Three well-separated clusters; the model's predictions are wrong for a quarter of each. The
    nearest-centroid labels are those of the clusters, and naming the classes differently permutes them."""
    from tl_core.methods.shot import cluster_labels

    g = torch.Generator().manual_seed(0)
    centres = torch.eye(3, 8) * 10
    truth = torch.arange(3).repeat_interleave(40)
    f = centres[truth] + torch.randn(120, 8, generator=g)
    wrong = torch.rand(120, generator=g) < 0.25
    pred = torch.where(wrong, (truth + 1) % 3, truth)
    probs = F.one_hot(pred, 3).float() * 0.8 + 0.2 / 3
    assert float((probs.argmax(1) == truth).float().mean()) < 0.8
    labels = cluster_labels(f, probs)
    assert torch.equal(labels, truth)
    perm = torch.tensor([2, 0, 1])
    assert torch.equal(cluster_labels(f, probs[:, perm]), perm.argsort()[truth])


def test_shot_phases_source_cross_entropy_then_im_and_pseudo_labels_with_the_head_frozen():
    m = build("shot", smoothing=0.1, beta=0.5)
    m.first_target_epoch = 1
    step = make_step()
    step.epoch = 0
    terms = m.losses(step)
    assert set(terms) == {"source_ce"}
    assert float(terms["source_ce"]) == pytest.approx(
        float(F.cross_entropy(step.logits_s, step.y_s, label_smoothing=0.1).detach()), rel=1e-6)
    assert m.lr_multipliers(0.1)["head"] == 1.0
    m.epoch = 1
    # the head is frozen; the features adapt at the phase's own share of the rate (its default: half)
    assert m.lr_multipliers(0.6)["head"] == 0.0 and m.lr_multipliers(0.6)["backbone"] == 0.5
    m.pseudo = torch.randint(0, K, (50,), generator=torch.Generator().manual_seed(1))
    m.pseudo_acc = 0.5
    step = make_step()
    step.epoch, step.idx_t = 1, torch.arange(B) * 2
    terms = m.losses(step)
    assert set(terms) == {"entropy", "diversity", "pseudo_ce"}
    assert float(terms["pseudo_ce"]) == pytest.approx(
        0.5 * np_ce(step.logits_t.detach().numpy(), m.pseudo[step.idx_t].numpy()), rel=1e-5)


def test_tent_adapts_with_the_entropy_of_target_predictions_only():
    m = build("tent")
    step = make_step()
    step.epoch = 1
    terms = m.losses(step)
    assert set(terms) == {"entropy"}
    assert float(terms["entropy"]) == pytest.approx(np_entropy(np_softmax(step.logits_t.detach().numpy())).mean(),
                                                    rel=1e-5)
