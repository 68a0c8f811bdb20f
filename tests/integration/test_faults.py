"""Faults during runs: out of GPU memory, a full disk, a non-finite loss, SIGTERM, crashes in the
middle of a checkpoint save. (Many sessions at once: tests/e2e/test_load.py.)"""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import torch

from conftest import ROOT, tiny_config
from tl_core import runs
from tl_core.base import events as ev
from tl_core.models.checkpoint import Checkpointer, Predictor
from tl_core.training.trainer import Trainer
from tl_core.planning.validation import validate


def tiny(method="dann", **kw):
    return tiny_config(method, **{"batch_size": 32, **kw})


def oom_above(trainer, limit):
    """Make the backbone run out of 'GPU memory' on batches larger than `limit` (simulated on the CPU)."""
    real = trainer.model.backbone.features

    def features(x):
        if x.shape[0] > limit and torch.is_grad_enabled():
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return real(x)

    trainer.model.backbone.features = features


def test_out_of_memory_halves_the_batch_and_the_run_goes_on():
    seen = []
    t = Trainer(tiny(), on_event=seen.append)
    t.setup()
    oom_above(t, 40)  # 32 source + 32 target = 64 images: too many; 16 + 16 fits
    res = t.fit()
    assert res.status == "finished" and res.batch_size == 16
    halved = [e for e in seen if isinstance(e, ev.BatchHalved)]
    assert [e.batch_size for e in halved] == [16]
    assert all(h["batch_size"] == 16 for h in res.history)


def test_out_of_memory_at_every_size_fails_after_four_halvings_with_advice():
    seen = []
    t = Trainer(tiny(), on_event=seen.append)
    t.setup()
    oom_above(t, 0)
    res = t.fit()
    assert res.status == "failed" and "out of memory at batch size 2 after halving it 4 times" in res.reason
    assert "smaller input size" in res.reason
    assert [e.batch_size for e in seen if isinstance(e, ev.BatchHalved)] == [16, 8, 4, 2]


def _store_run(cfg, monkeypatch_epoch_fault=None):
    """Run in this process but through the store, as a worker would, and return the run row."""
    from tl_core.runs import StoreSink, store

    st = store()
    rid = f"fault-{time.time_ns()}"
    st.insert_run(rid, validate(cfg).to_dict())
    st.update(rid, status="running")
    Trainer(cfg, on_event=StoreSink(st, rid), checkpointer=Checkpointer(st.run_dir(rid))).fit()
    return rid, runs.get_run(rid)


def test_disk_full_while_saving_keeps_the_previous_checkpoint_and_fails_with_a_message(home, monkeypatch):
    import tl_core.models.checkpoint as ck

    real, calls = ck._save_tensors, {"n": 0}

    def save(path, tensors, meta=None):
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 2's model file (epoch 1 wrote model + state)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, tensors, meta)

    monkeypatch.setattr(ck, "_save_tensors", save)
    rid, r = _store_run(tiny(epochs=3))
    assert r["status"] == "failed"
    assert "the disk is full" in r["reason"] and "the checkpoint of epoch 1 is intact" in r["reason"]
    assert "resume" in r["reason"]
    last = runs.checkpoint_path(rid, "last")
    assert last is not None and last.name == "ckpt-0001"
    Predictor(last)  # loads
    assert not list(last.parent.glob(".tmp-ckpt-*"))  # the partial copy was removed


def test_non_finite_loss_fails_as_diverged_keeping_the_last_good_checkpoint(home, monkeypatch):
    from tl_core.methods.dann import DANN

    orig = DANN.losses

    def poisoned(self, step):
        out = orig(self, step)
        if step.epoch == 1:
            out["domain"] = out["domain"] * float("nan")
        return out

    monkeypatch.setattr(DANN, "losses", poisoned)
    rid, r = _store_run(tiny(epochs=3))
    assert r["status"] == "failed" and r["reason"].startswith("diverged")
    assert "Lower the learning rate" in r["reason"]
    last = runs.checkpoint_path(rid, "last")
    assert last is not None and last.name == "ckpt-0001"
    Predictor(last)


def test_sigterm_to_a_worker_interrupts_and_keeps_the_partial_checkpoint(home):
    """A SIGTERM with no cancel asked for leaves the run interrupted (resumable), not cancelled (issue 29)."""
    rid = runs.submit(tiny(epochs=6, steps_per_epoch=150, batch_size=16))
    deadline = time.time() + 120
    while time.time() < deadline and runs.checkpoint_path(rid, "last") is None:
        time.sleep(0.2)
    pid = runs.get_run(rid)["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 15
    while time.time() < deadline and runs.get_run(rid)["status"] != "interrupted":
        time.sleep(0.1)
    r = runs.get_run(rid)
    assert r["status"] == "interrupted"
    Predictor(runs.checkpoint_path(rid, "last"))


def test_a_crash_at_any_point_of_a_checkpoint_save_leaves_each_checkpoint_whole_or_absent(tmp_path):
    p = subprocess.run([sys.executable, "tests/helpers/kill_during_save.py", str(tmp_path / "run"), "25"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    c = json.loads(p.stdout.strip().splitlines()[-1])
    print("kill-during-save:", c)
    assert c["kills"] == 25 and c["broken"] == 0 and c["pointer_bad"] == 0
    assert c["loaded"] == c["folders_checked"] > 0 and c["saves_completed"] > 0
    assert c["partial_tmp_left"] > 0  # some kills landed in the middle of a save
