"""Short end-to-end runs on small subsamples: every method, stop flag, NaN guard, repeatability."""
import math

import pytest

from tl_core import RunConfig
from tl_core import events as ev
from tl_core.domains import get_domain
from tl_core.methods import get_method, list_methods
from tl_core.trainer import Trainer, train


def tiny(method="dann", **train_kw):
    labels = 3 if get_method(method).needs_target_labels else "none"
    kw = {"epochs": 2, "steps_per_epoch": 6, "batch_size": 16, "embedding": "pca", "embed_points": 50, **train_kw}
    return RunConfig().replace(
        data={"source": "syndigits", "target": "uci_digits", "max_per_domain": 300, "target_labels": labels},
        method={"name": method, "params": {}}, train=kw)


@pytest.mark.parametrize("method", list_methods())
def test_short_run_per_method(method):
    seen = []
    res = train(tiny(method), on_event=lambda e: seen.append(e))
    assert res.status == "finished", res.reason
    assert res.epochs_done == 2 and 0 <= res.target_acc <= 1 and 0 <= res.source_acc <= 1
    kinds = [e.kind for e in seen]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert kinds.count("epoch") == 2 and kinds.count("embedding") == 2 and "progress" in kinds
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
