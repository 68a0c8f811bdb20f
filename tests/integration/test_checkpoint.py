"""Checkpoints: resume equivalence, crash safety, and prediction without pickle."""
import json
import pickle

import pytest
import torch

from tl_core import RunConfig
from tl_core.models.checkpoint import Checkpointer, Predictor
from tl_core.data.domains import get_domain
from tl_core.training.trainer import Trainer
from conftest import tiny_config


def cfg(epochs=3, **train):
    return tiny_config(images=400, **{"epochs": epochs, "steps_per_epoch": 12, "embedding": "pca", "embed_points": 50,
                                      **train})


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    full = Trainer(cfg(), checkpointer=Checkpointer(tmp_path / "a")).fit()
    calls = {"n": 0}

    def stop_mid_epoch_3():
        calls["n"] += 1
        return calls["n"] > 12 * 2 + 5  # five steps into the third epoch

    part = Trainer(cfg(), checkpointer=Checkpointer(tmp_path / "b"), should_stop=stop_mid_epoch_3).fit()
    assert part.status == "cancelled" and part.epochs_done == 2
    resumed = Trainer(cfg(), checkpointer=Checkpointer(tmp_path / "b")).fit()
    assert resumed.status == "finished" and resumed.epochs_done == 3
    assert resumed.target_acc == pytest.approx(full.target_acc, abs=1e-3)
    assert len(resumed.history) == len(full.history)
    for a, b in zip(resumed.history, full.history):
        assert a["losses"] == pytest.approx(b["losses"], rel=1e-5)
        assert a["target_acc"] == pytest.approx(b["target_acc"], abs=1e-3)


def test_best_and_last_are_kept_and_old_ones_pruned(tmp_path):
    ck = Checkpointer(tmp_path, keep=2)
    Trainer(cfg(epochs=4), checkpointer=ck).fit()
    last = json.loads((tmp_path / "last.json").read_text())
    assert last["epoch"] == 4 and ck.path("last").name == "ckpt-0004"
    best = json.loads((tmp_path / "best.json").read_text())
    kept = sorted(p.name for p in tmp_path.glob("ckpt-*"))
    assert f"ckpt-{best['epoch']:04d}" in kept and len(kept) <= 3


def test_crash_during_save_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    import tl_core.models.checkpoint as ckmod

    ck = Checkpointer(tmp_path)
    t = Trainer(cfg(epochs=1), checkpointer=ck)
    t.fit()
    before = ck.path("last")
    real = ckmod._save_tensors
    n = {"calls": 0}

    def crash_on_second(path, tensors, meta=None):
        n["calls"] += 1
        if n["calls"] == 2:
            raise OSError(28, "No space left on device")
        real(path, tensors, meta)

    monkeypatch.setattr(ckmod, "_save_tensors", crash_on_second)
    from tl_core.base.errors import RunAborted

    with pytest.raises(RunAborted, match="disk is full.*epoch 1 is intact"):
        ck.save(t.state, t.model_meta(), 2, best=True)
    assert ck.path("last") == before  # the pointer never moved
    assert not list(tmp_path.glob(".tmp-ckpt-*"))  # the partial copy is gone
    Predictor(before)  # and what it points to loads


def test_predictor_needs_no_pickle(tmp_path, monkeypatch):
    Trainer(cfg(epochs=1), checkpointer=Checkpointer(tmp_path)).fit()
    folder = Checkpointer(tmp_path).path("best")
    assert {p.name for p in folder.iterdir()} == {"model.safetensors", "model.json", "state.safetensors",
                                                   "state.json"}

    def no_pickle(*a, **k):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    pred = Predictor(folder)
    x = get_domain("uci_digits").load().x_test[:5]
    out = pred.predict(x, top_k=3)
    assert len(out["classes"]) == 5 and len(out["classes"][0]) == 3
    for p in out["probs"]:  # top-3 of a softmax: descending, and together at most 1
        assert p == sorted(p, reverse=True) and 0 < sum(p) <= 1 + 1e-6
    assert out["seen"].shape == (5, 28, 28, 3)  # the model's view, displayable (LeNet reads colour here)


def test_a_bottleneck_model_is_saved_and_loaded_with_its_bottleneck(tmp_path):
    c = cfg(epochs=1).replace(model={"bottleneck": 32})
    t = Trainer(c, checkpointer=Checkpointer(tmp_path))
    t.fit()
    folder = Checkpointer(tmp_path).path("best")
    assert json.loads((folder / "model.json").read_text())["bottleneck"] == 32
    pred = Predictor(folder)
    assert pred.model.backbone.feat_dim == 32
    x = get_domain("uci_digits").load().x_test[:8]
    t.model.eval()
    from tl_core.base.inputs import adapt

    want = t.model(adapt(x, t.spec, torch.device("cpu"))).softmax(1).max(1).values
    got = torch.tensor([p[0] for p in pred.predict(x, top_k=1)["probs"]])
    assert torch.allclose(want, got, atol=1e-5)


def test_configs_without_a_bottleneck_keep_their_ids():
    c = cfg()
    d = c.to_dict()
    d["model"].pop("bottleneck")
    assert RunConfig.from_dict(d).config_id() == c.config_id()
    assert c.replace(model={"bottleneck": 64}).config_id() != c.config_id()


def test_the_checkpointer_saves_any_state_it_is_given_not_a_trainer(tmp_path):
    """The checkpointer sees one object with state_dict / load_state_dict (and `epoch`): nested
    tensors and plain values come back as they went in, parameter names with dots included."""

    class Box:
        def __init__(self, d):
            self.d = d
            self.epoch = 0

        def state_dict(self):
            return self.d

        def load_state_dict(self, d):
            self.d, self.epoch = d, d["n"]

    lin = torch.nn.Linear(3, 2)
    saved = {"model": lin.state_dict(), "opt": {"state": {"0": {"step": torch.tensor(5.0), "m": torch.ones(2)}},
                                                 "groups": [{"lr": 0.1, "name": "head"}]},
             "embed": None, "n": 7, "history": [{"epoch": 7, "acc": 0.5}]}
    ck = Checkpointer(tmp_path)
    ck.save(Box(saved), {"backbone": "x"}, 7, best=True)
    box = Box({})
    assert ck.restore(box) == 7
    back = box.d
    assert torch.equal(back["model"]["weight"], lin.weight) and set(back["model"]) == {"weight", "bias"}
    assert torch.equal(back["opt"]["state"]["0"]["m"], torch.ones(2)) and float(back["opt"]["state"]["0"]["step"]) == 5
    assert back["opt"]["groups"] == saved["opt"]["groups"] and back["embed"] is None and back["history"] == saved["history"]
    assert json.loads((ck.path("last") / "model.json").read_text()) == {"backbone": "x", "epoch": 7}


def test_train_state_round_trip_restores_the_optimizer_and_the_random_streams(tmp_path):
    """A trainer's state saved after one epoch and loaded into a fresh trainer: same weights, same
    Adam moments, same sampler positions, and the next random draws are the same."""
    a = Trainer(cfg(epochs=1))
    a.fit()
    ck = Checkpointer(tmp_path)
    ck.save(a.state, a.model_meta(), 1, best=True)
    saved_rng = a.state.state_dict()["rng"]
    b = Trainer(cfg(epochs=1))
    b.setup()  # seeds the global generators afresh: only the restore can bring back a's streams
    assert not torch.equal(torch.get_rng_state(), saved_rng["torch"])
    assert ck.restore(b.state) == 1
    assert torch.equal(torch.get_rng_state(), saved_rng["torch"])
    assert torch.equal(b.state.aug_g.get_state(), saved_rng["aug"])
    sa, sb = a.state.state_dict(), b.state.state_dict()
    for k, v in sa["model"].items():
        assert torch.equal(v, sb["model"][k]), k
    for pid, st in sa["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(v, sb["optimizer"]["state"][pid][k]), (pid, k)
    assert all(torch.equal(sa["samplers"]["source"][k], sb["samplers"]["source"][k]) for k in sa["samplers"]["source"])
    assert b.state.history == a.state.history and b.state.best == a.state.best


def test_a_weight_normalised_head_is_saved_and_predicts_after_loading(tmp_path):
    """model.head = weight_norm (SHOT's recipe): the checkpoint says so, and Predictor rebuilds it."""
    c = cfg(epochs=1).replace(model={"head": "weight_norm"}, method={"name": "source_only", "params": {}})
    t = Trainer(c, checkpointer=Checkpointer(tmp_path))
    t.fit()
    folder = Checkpointer(tmp_path).path("best")
    assert json.loads((folder / "model.json").read_text())["head"] == "weight_norm"
    p = Predictor(folder)
    from tl_core.base.inputs import adapt

    x = get_domain("uci_digits").load().x_test[:4]
    with torch.no_grad():
        want = t.model.eval()(adapt(x, t.spec, t.device)).argmax(1)
    assert [row[0] for row in p.predict(x)["classes"]] == [t.data.classes[i] for i in want]
    assert any("parametrizations" in k for k in p.model.state_dict())
