"""Short end-to-end runs on small subsamples: every method, stop flag, NaN guard, repeatability."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, tiny_config

from tl_core import RunConfig
from tl_core.base import events as ev
from tl_core.base.errors import ConfigError
from tl_core.data.domains import get_domain
from tl_core.methods import HookedMethod, get_method, list_methods
from tl_core.training.evaluation import Evaluator
from tl_core.runs import resolve_reference
from tl_core.training.trainer import Trainer, train


def tiny(method="dann", **train_kw):
    labels = 3 if get_method(method).needs_target_labels else "none"
    return tiny_config(method, target_labels=labels, **{"embedding": "pca", "embed_points": 50, **train_kw})


@pytest.fixture(scope="module")
def teacher_run():
    """A finished run in the session's store, to teach `distill` (trained by the CLI, as a user would)."""
    p = subprocess.run([sys.executable, "-m", "tl_core", "train", "--source", "syndigits", "--target", "uci_digits",
                        "--method", "source_only", "--epochs", "1", "--steps", "30", "--batch-size", "32",
                        "--max-per-domain", "300", "--embedding", "none", "--json", "--quiet"],
                       cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])["run_id"]


def config_for(method, request, **train_kw):
    """A tiny config that this method can run (BatchNorm for AdaBN, a teacher for distillation)."""
    cfg = tiny(method, **train_kw)
    if method == "adabn":
        cfg = cfg.replace(model={"backbone": "resnet18", "pretrained": False, "input_size": 32})
    if method == "tent":  # LeNet has no BatchNorm; the bottleneck brings one
        cfg = cfg.replace(model={"bottleneck": 32})
    if method == "distill":
        cfg = cfg.replace(method={"name": "distill", "params": {"teacher": request.getfixturevalue("teacher_run")}})
    return cfg


@pytest.mark.parametrize("method", list_methods())
def test_short_run_per_method(method, request):
    seen = []
    cfg = config_for(method, request)
    res = train(cfg, on_event=lambda e: seen.append(e), resolve_run=resolve_reference)  # as the worker does
    assert res.status == "finished", res.reason
    m = get_method(method)(cfg.method.params)
    epochs = m.epochs(2) if isinstance(m, HookedMethod) else 2  # a closed-form head fit has one
    assert res.epochs_done == epochs and 0 <= res.target_acc <= 1 and 0 <= res.source_acc <= 1
    kinds = [e.kind for e in seen]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert kinds.count("epoch") == epochs and kinds.count("embedding") == epochs
    assert "progress" in kinds
    m = next(e for e in seen if isinstance(e, ev.EpochEnd)).metrics
    for key in ("source_acc", "target_acc", "source_val_acc", "target_per_class", "target_confusion",
                "a_distance", "mmd", "losses"):
        assert key in m
    n_test = len(get_domain("uci_digits").load().y_test)
    assert len(m["target_confusion"]) == 10 and sum(map(sum, m["target_confusion"])) == n_test
    emb = next(e for e in seen if isinstance(e, ev.EmbeddingReady)).points
    assert len(emb["x"]) == len(emb["domain"]) == 100 and set(emb["domain"]) == {"source", "target"}


def test_same_seed_same_result_on_cpu():
    a, b = train(tiny("dann", seed=3)), train(tiny("dann", seed=3))
    assert a.target_acc == b.target_acc
    assert [h["losses"] for h in a.history] == [h["losses"] for h in b.history]


def test_stop_flag_is_honoured_within_one_batch():
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > 3

    res = Trainer(tiny("source_only"), should_stop=should_stop).fit()
    assert res.status == "cancelled" and calls["n"] == 4


def test_non_finite_loss_stops_the_run_with_advice(monkeypatch):
    from tl_core.methods.source_only import SourceOnly

    orig = SourceOnly.losses

    def poisoned(self, step):
        out = orig(self, step)
        if step.progress > 0.2:
            out["source_ce"] = out["source_ce"] * math.inf
        return out

    monkeypatch.setattr(SourceOnly, "losses", poisoned)
    seen = []
    res = train(tiny("source_only"), on_event=seen.append)
    assert res.status == "failed"
    assert "diverged" in res.reason and "Lower the learning rate" in res.reason
    assert isinstance(seen[-1], ev.RunFailed)


def test_target_labels_regime_feeds_labelled_target_batches():
    t = Trainer(tiny("finetune"))
    t.setup()
    assert len(t.data.tgt_labelled) == 30  # 3 per class x 10
    res = t.fit()
    assert "target_ce" in res.history[-1]["losses"]


def test_freeze_depth_reaches_the_optimizer():
    cfg = tiny("source_only").replace(model={"freeze": 2})
    t = Trainer(cfg)
    t.setup()
    bb_params = {id(p) for p in t.model.backbone.parameters() if p.requires_grad}
    frozen = [p for st in list(t.model.backbone.stages.values())[:2] for p in st.parameters()]
    assert frozen and not any(id(p) in bb_params for p in frozen)
    before = [p.clone() for p in frozen]
    t.fit()
    assert all((a == b).all() for a, b in zip(before, frozen))


# -- issue 5: selection, cached features, layer-wise fine-tuning, AdaBN without training --

@pytest.mark.parametrize("selection", ["last", "source_val_acc", "im", "snd", "neg_entropy"])
def test_the_reported_accuracy_is_the_selected_epochs_not_the_best(selection):
    res = train(tiny("dann", epochs=3, selection=selection))
    h = res.history
    scores = [float(i) if selection == "last" else e["selection"][selection] for i, e in enumerate(h)]
    chosen = h[int(np.argmax(scores))]  # first maximum: later ties do not replace it
    assert res.best_epoch == chosen["epoch"] and res.target_acc == chosen["target_acc"]
    assert res.source_acc == chosen["source_acc"] and res.last_target_acc == h[-1]["target_acc"]
    for e in h:
        assert set(e["selection"]) == {"source_val_acc", "im", "snd", "neg_entropy"}


def test_selection_never_reads_target_labels(monkeypatch):
    """Scramble the target test labels: every selection score, and so the chosen epoch, stays the same."""
    a = Trainer(tiny("mcc", epochs=3, selection="im"))
    a.setup()
    ra = a.fit()
    b = Trainer(tiny("mcc", epochs=3, selection="im"))
    b.setup()
    perm = torch.randperm(len(b.data.y_target_test), generator=torch.Generator().manual_seed(0))  # not the global RNG
    b.data.y_target_test = b.data.y_target_test[perm]
    rb = b.fit()
    assert [h["selection"] for h in ra.history] == [h["selection"] for h in rb.history]
    assert ra.best_epoch == rb.best_epoch


def pacs_photo_to_sketch():
    """PACS photo -> sketch with the pretrained EfficientNet-Lite0 at 64 px (small enough for a test)."""
    from conftest import PACS

    if not PACS.exists():
        pytest.skip("PACS subset not in TL_DATA_DIR")
    return RunConfig().replace(data={"source": f"folder:{PACS / 'photo'}", "target": f"folder:{PACS / 'sketch'}"},
                               model={"backbone": "efficientnet_lite0", "input_size": 64},
                               train={"epochs": 3, "steps_per_epoch": 6, "batch_size": 16, "embedding": "pca",
                                      "embed_points": 50})


@pytest.mark.parametrize("setting", ["digits", "pacs"])
def test_feature_extract_computes_each_domains_features_once(setting, monkeypatch, tmp_path):
    monkeypatch.setenv("TL_HOME", str(tmp_path))  # an empty feature cache (not the session's shared one)
    calls = []
    orig = Evaluator.backbone_features

    def counting(self, x, batch=512):
        calls.append(len(x))
        return orig(self, x, batch)

    monkeypatch.setattr(Evaluator, "backbone_features", counting)
    base = tiny("feature_extract", epochs=3) if setting == "digits" else pacs_photo_to_sketch()
    cfg = base.replace(method={"name": "feature_extract", "params": {"head": "linear"}})
    t = Trainer(cfg)
    t.setup()
    res = t.fit()
    assert res.status == "finished" and res.epochs_done == 3
    d = t.data
    # source train (with its validation part), source test, target test: each once, for all three epochs
    assert sorted(calls) == sorted([len(d.src_train) + len(d.src_val), len(d.source.y_test), len(d.y_target_test)])
    assert sorted(t.method.computed) == ["source/test", "source/train", "target/test"]
    assert t.trainable == sum(p.numel() for p in t.model.head.parameters())
    calls.clear()
    again = train(cfg.replace(method={"name": "feature_extract", "params": {"head": "logreg"}}))
    assert again.status == "finished" and calls == []  # a second run reads the disk cache


def test_frozen_prefix_is_cached_once_and_gives_the_same_features(monkeypatch):
    """A pretrained backbone with frozen stages trains on their cached output: the features it
    evaluates are those of the full network, and the frozen stages run once per image, not per step."""
    cfg = pacs_photo_to_sketch().replace(model={"freeze": 7}, method={"name": "dann", "params": {}},
                                         train={"epochs": 2, "steps_per_epoch": 25, "augment": False})
    t = Trainer(cfg)
    t.setup()
    c, d = t.prefix_cache, t.data
    assert c is not None and "frozen features cached" in t.cache_note
    assert len(c.store["source/train"]) == len(d.src_train) + len(d.src_val)
    assert len(c.store["target/test"]) == len(d.target.x_test)
    for key, x in [("target/test", d.target.x_test), ("source/val", d.source.x_train[d.src_val])]:
        cached = t.evaluator.features_from_cache(key)
        assert torch.allclose(cached, t.backbone_features(x), atol=1e-4, rtol=1e-4)
    calls = []
    frozen = t.model.backbone.frozen_stages()[0]
    frozen.register_forward_hook(lambda *a: calls.append(1))
    before = [p.detach().clone() for p in t.model.backbone.stages["blocks6"].parameters()]
    res = t.fit()
    assert res.status == "finished" and calls == []  # training and evaluation never re-ran the frozen stages
    after = list(t.model.backbone.stages["blocks6"].parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))  # the trainable stages learned


@pytest.mark.parametrize("change", ["none", "pixels", "random_init", "too_big", "augment"])
def test_frozen_prefix_falls_back_to_images_when_caching_cannot_serve(change, monkeypatch):
    from tl_core.models import prefix_cache

    # enough steps that caching pays (the control, "none", caches)
    cfg = pacs_photo_to_sketch().replace(model={"freeze": 8},
                                         train={"epochs": 1, "steps_per_epoch": 40, "augment": False})
    if change == "pixels":  # the strong view is made from target pixels
        cfg = cfg.replace(method={"name": "pseudo_label", "params": {}})
    elif change == "random_init":  # only pretrained frozen stages are worth caching
        cfg = cfg.replace(model={"pretrained": False})
    elif change == "too_big":
        monkeypatch.setattr(prefix_cache, "MAX_BYTES", 1000)
    elif change == "augment":  # jittered images have no fixed frozen output
        cfg = cfg.replace(train={"augment": True})
    t = Trainer(cfg)
    t.setup()
    assert (t.prefix_cache is not None) == (change == "none")
    if change == "augment":
        assert "augmented" in t.cache_note
    if change == "too_big":
        assert "over the" in t.cache_note
        assert t.fit().status == "finished"


def test_gradual_unfreezing_leaves_lower_stages_untouched_until_their_turn():
    cfg = tiny("finetune", epochs=2).replace(method={"name": "finetune", "params": {
        "source_phase": 0.5, "gradual_unfreeze": True, "layer_decay": 0.5}})
    t = Trainer(cfg)
    t.setup()
    conv1 = t.model.backbone.stages["conv1"][0].weight
    seen = {}
    orig = t.train_step

    def step(step_no, epoch):
        out = orig(step_no, epoch)
        seen[step_no] = conv1.detach().clone()
        return out

    t.train_step = step
    t.fit()
    # 12 steps: phase 2 starts at step 6; conv1 (the lowest of 3 stages) thaws at 3/4 of phase 2 -> step 10.5
    assert torch.equal(seen[6], seen[10]) and not torch.equal(seen[10], seen[11])
    assert not torch.equal(seen[0], seen[5])  # phase 1 trains everything


def test_adabn_adapts_a_finished_run_without_training(tmp_path, monkeypatch):
    from tl_core import runs

    cfg = tiny("source_only").replace(model={"backbone": "resnet18", "pretrained": False, "input_size": 32})
    rid = runs.submit(cfg)
    assert runs.wait(rid, 240)["status"] == "finished"
    base = runs.get_run(rid)
    res = train(cfg.replace(method={"name": "adabn", "params": {"from_run": rid}}), resolve_run=resolve_reference)
    assert res.status == "finished" and res.epochs_done == 1
    assert res.source_acc == pytest.approx(base["source_acc"], abs=1e-9)  # same weights, source statistics
    assert res.target_acc != base["target_acc"]  # target statistics change the target predictions


def test_distillation_trains_a_student_from_a_finished_run(teacher_run, request):
    res = train(config_for("distill", request), resolve_run=resolve_reference)
    assert res.status == "finished" and "distill" in res.history[-1]["losses"]


def test_run_references_are_resolved_before_training_not_by_the_method(teacher_run, request):
    """The trainer loads the teacher through the resolver it is given, before `bind`; no method module
    reads the run store or knows the trainer."""
    import re
    from pathlib import Path

    from tl_core.base.errors import ConfigError
    asked = []

    def resolve(rid, device):
        asked.append(rid)
        return resolve_reference(rid, device)

    t = Trainer(config_for("distill", request), resolve_run=resolve)
    t.setup()
    assert asked == [teacher_run] and t.method.teacher is t.method.refs["teacher"]
    nosuch = tiny("distill").replace(method={"name": "distill", "params": {"teacher": "nosuch"}})
    with pytest.raises(ConfigError, match="does not exist"):
        Trainer(nosuch, resolve_run=resolve_reference).setup()
    with pytest.raises(ConfigError, match="no run store"):  # the trainer never reaches for a store itself
        Trainer(nosuch).setup()
    methods = Path(__file__).resolve().parents[2] / "tl_core" / "methods"
    for f in methods.glob("*.py"):
        assert not re.search(r"from \.\.(runs|store|trainer)\b|import (runs|trainer)\b", f.read_text()), f.name


def test_l2sp_optimises_its_own_objective_without_the_optimizers_weight_decay():
    """L2-SP's penalty is its whole regulariser; other methods keep the configured decay."""
    l2sp = Trainer(tiny("l2sp", weight_decay=5e-4))
    l2sp.setup()
    assert l2sp.state.optimizer.param_groups and all(g["weight_decay"] == 0.0 for g in l2sp.state.optimizer.param_groups)
    dann = Trainer(tiny("dann", weight_decay=5e-4))
    dann.setup()
    assert all(g["weight_decay"] == 5e-4 for g in dann.state.optimizer.param_groups)


def _snapshot_at_epoch(t: Trainer, epoch: int) -> dict:
    """Parameters and the source sampler's position when `epoch` ends (through the trainer's events)."""
    snap: dict = {}

    def on_event(e):
        if isinstance(e, ev.EpochEnd) and e.epoch == epoch:
            snap["params"] = {k: v.detach().clone() for k, v in t.model.named_parameters()}
            snap["source_pos"] = t.state.samplers["source"].state()["pos"].clone()

    t.on_event = on_event
    return snap


def test_shot_adapts_without_reading_the_source_and_keeps_the_source_head():
    t = Trainer(tiny("shot", epochs=4).replace(method={"name": "shot", "params": {"source_phase": 0.5}}))
    t.setup()
    snap = _snapshot_at_epoch(t, 2)
    res = t.fit()
    assert res.status == "finished" and t.method.first_target_epoch == 2
    assert set(res.history[0]["losses"]) == {"source_ce", "total"}
    assert {"entropy", "diversity", "pseudo_ce"} <= set(res.history[-1]["losses"])
    after = dict(t.model.named_parameters())
    assert torch.equal(after["head.weight"], snap["params"]["head.weight"])  # the hypothesis is frozen
    assert not torch.equal(after["backbone.stages.conv1.0.weight"], snap["params"]["backbone.stages.conv1.0.weight"])
    # source-free: no source batch was drawn after the source phase
    assert torch.equal(t.state.samplers["source"].state()["pos"], snap["source_pos"])
    assert 0 <= res.history[-1]["diagnostics"]["pseudo_label_acc"] <= 1


@pytest.mark.parametrize("target_stats", [True, False])
def test_shot_reads_its_first_pseudo_labels_through_target_batchnorm_statistics(target_stats):
    """The source model's BatchNorm statistics are the source's; SHOT measures the target's before it
    labels the target's clusters for the first time (unless told not to)."""
    cfg = tiny("shot", epochs=2).replace(model={"bottleneck": 32}, method={
        "name": "shot", "params": {"target_stats": target_stats, "source_phase": 0.5}})
    t = Trainer(cfg)
    t.setup()
    bn = next(m for m in t.model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    before = bn.running_mean.clone()
    t.method.begin_epoch(t.ctx, t.method.first_target_epoch)
    assert torch.equal(bn.running_mean, before) is not target_stats
    assert t.method.pseudo is not None and (t.method.pseudo[t.data.tgt_train] >= 0).all()


def test_tent_moves_only_the_batchnorm_scale_and_shift():
    t = Trainer(tiny("tent", epochs=2).replace(model={"bottleneck": 32}))
    t.setup()
    snap = _snapshot_at_epoch(t, 1)
    res = t.fit()
    assert res.status == "finished" and set(res.history[-1]["losses"]) == {"entropy", "total"}
    bn = {n for n, mod in t.model.named_modules() if isinstance(mod, torch.nn.BatchNorm1d)}
    moved = {k for k, v in t.model.named_parameters() if not torch.equal(v, snap["params"][k])}
    assert moved and all(k.rsplit(".", 1)[0] in bn for k in moved), moved
    with pytest.raises(ConfigError, match="bottleneck"):
        Trainer(tiny("tent")).setup()


def test_tent_adapts_frozen_stages_batchnorm_with_a_fresh_constant_rate_and_no_decay():
    """The authors' TENT: every BatchNorm layer's γ and β move at test time, those of frozen stages too,
    under a fresh optimiser at a constant 1e-3 without weight decay; the target is evaluated with
    target statistics and the model's own statistics are put back afterwards."""
    cfg = tiny("tent", epochs=2, weight_decay=5e-4).replace(
        model={"backbone": "resnet18", "pretrained": False, "input_size": 32, "freeze": 2})
    t = Trainer(cfg)
    t.setup()
    snap = _snapshot_at_epoch(t, 1)
    res = t.fit()
    assert res.status == "finished"
    bn = {n for n, mod in t.model.named_modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)}
    moved = {k for k, v in t.model.named_parameters() if not torch.equal(v, snap["params"][k])}
    assert moved and all(k.rsplit(".", 1)[0] in bn for k in moved), moved
    frozen = t.model.backbone.stage_names[0]
    assert any(k.startswith(f"backbone.stages.{frozen}.") for k in moved)  # a frozen stage's BatchNorm adapted
    groups = t.state.optimizer.param_groups
    assert all(g["weight_decay"] == 0 for g in groups)
    assert all(g["lr"] == pytest.approx(1e-3) for g in groups)
    # the target evaluation measured target statistics and left the model's own in place
    layer = next(m for m in t.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    mean = layer.running_mean.clone()
    with t.method.target_eval(t.ctx):
        assert not torch.equal(layer.running_mean, mean)
    assert torch.equal(layer.running_mean, mean)


def test_an_interim_epoch_reads_a_fixed_sample_holding_the_map_points_and_the_last_reads_all(monkeypatch):
    """Epochs before the last read each split's fixed sample (quicker; they decide nothing when the run
    reports its last epoch); the sample is the full reading restricted to its rows, the map's points included."""
    import tl_core.data.loaders as data_mod
    from tl_core.planning.planner import _eval_images
    from tl_core.scores.stats import unpack_bits

    monkeypatch.setattr(data_mod, "INTERIM_EVAL_IMAGES", 150)
    tr = Trainer(tiny("source_only", epochs=3))
    res = tr.fit()
    n_target, n_source = len(tr.data.y_target_test), len(tr.data.source.y_test)
    assert n_target > 150 and n_source > 150
    assert [(h["target_n"], h["source_n"], h.get("sampled", False)) for h in res.history] == \
        [(150, 150, True), (150, 150, True), (n_target, n_source, False)]
    assert res.target_n == n_target  # the reported epoch read every image

    ev_ = tr.evaluator
    full = ev_.evaluate(2, full=True)
    full_map = ev_._last_embed
    part = ev_.evaluate(2, full=False)
    rows, places = ev_.interim["target/test"]
    assert torch.equal(rows[places], ev_.embed_idx_t) and len(set(rows.tolist())) == 150
    right = unpack_bits(full["target_correct"], n_target)
    assert part["target_acc"] == pytest.approx(right[rows.numpy()].mean())
    assert np.array_equal(unpack_bits(part["target_correct"], 150), right[rows.numpy()])
    for a, b in zip(full_map, ev_._last_embed):  # the same images on the map, read the same
        np.testing.assert_allclose(a, b, atol=1e-5)

    # the planner counts what the run reads: 3 full readings where a score picks the epoch
    cfg = tiny("source_only", epochs=3)
    assert _eval_images(cfg) < _eval_images(cfg.replace(train={"selection": "im"}))
    picked = train(tiny("source_only", epochs=2, selection="im"))
    assert [h["target_n"] for h in picked.history] == [n_target, n_target]
