"""Identical work is trained once (issue 30, items 1-2): a run's key is everything that decides its
numbers; the same key trained twice in two processes gives the same numbers bit for bit, so a finished
run is reused and a queued or training one is waited on, never trained twice."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import class_zip, named_session, ROOT, tiny_config
from tl_core.app import api
from tl_core import runs
from tl_core.planning.runkey import key_parts, run_key

TIMING = {"wall_s", "train_s", "eval_s", "embed_s", "images_per_s"}


def tiny(method="dann", backbone="lenet", **train):
    return tiny_config(method, images=200, backbone=backbone, **{"embedding": "pca", "embed_points": 40, **train})


def numbers(run_id):
    """Every epoch's metrics without the timings (which differ run to run)."""
    hist, _ = runs.read_metrics(run_id)
    return [{k: v for k, v in h.items() if k not in TIMING} for h in hist]


def tensors(run_id):
    folder = runs.checkpoint_path(run_id, "last")
    return load_file(str(folder / "model.safetensors"))


def finish_all(ids, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs.schedule()  # this process plays the server
        rows = [runs.get_run(i) for i in ids]
        if all(r["status"] in ("finished", "failed", "cancelled", "interrupted") for r in rows):
            return rows
        time.sleep(0.3)
    raise AssertionError("runs did not end in time")


@pytest.mark.parametrize("cfg", [tiny("dann"), tiny("shot"),
                                 tiny("source_only", "efficientnet_lite0", embedding="none")],
                         ids=["dann", "shot", "pretrained-frozen"])
def test_one_key_trained_twice_in_two_processes_gives_the_same_numbers_bit_for_bit(home, cfg):
    if cfg.model.backbone != "lenet":  # frozen through the prefix cache: its features computed once
        cfg = cfg.replace(model={"freeze": 9, "input_size": 64})
    a = runs.submit(cfg, fresh=True)
    b = runs.submit(cfg, fresh=True)  # trained anyway, in its own worker process
    ra, rb = finish_all([a, b])
    assert ra["status"] == rb["status"] == "finished", (ra["reason"], rb["reason"])
    assert ra["pid"] != rb["pid"] and not rb["reused_from"]
    assert ra["run_key"] and ra["run_key"] == rb["run_key"]
    assert numbers(a) == numbers(b)  # every epoch's accuracies, losses, confusion, per-image correctness
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_a_finished_run_is_reused_and_a_queued_one_attached_never_trained_twice(home, monkeypatch):
    cfg = tiny("dann", seed=3)
    first = runs.submit(cfg)
    later = runs.submit(cfg)  # the first is still queued or training: this one waits on it
    assert runs.get_run(later)["attached"] and "training now" in runs.get_run(later)["reused_words"]
    rows = finish_all([first, later])
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert rows[1]["reused_from"] == first and rows[1]["pid"] is None  # no worker ever started for it
    assert numbers(later) == numbers(first) and rows[1]["target_acc"] == rows[0]["target_acc"]
    again = runs.submit(cfg)  # after it finished: the numbers at once
    r = runs.get_run(again)
    assert r["status"] == "finished" and r["reused_from"] == first and "same numbers" in r["reused_words"]
    assert numbers(again) == numbers(first)
    a, b = runs.checkpoint_path(first, "best"), runs.checkpoint_path(again, "best")
    assert (a / "model.safetensors").stat().st_ino == (b / "model.safetensors").stat().st_ino  # linked, not copied
    assert runs.load_model(again).classes == runs.load_model(first).classes
    fresh = runs.submit(cfg, fresh=True)  # "Train again" / --fresh
    assert runs.get_run(fresh)["status"] in ("queued", "starting") and not runs.get_run(fresh)["reused_from"]
    runs.cancel(fresh)


def test_cancelling_the_run_waited_on_lets_the_waiting_one_train(home, monkeypatch):
    monkeypatch.setattr(runs.jobs, "schedule", lambda st=None: [])
    cfg = tiny("source_only", seed=5)
    first, later = runs.submit(cfg), runs.submit(cfg)
    assert runs.get_run(later)["attached"]
    runs.cancel(first)  # queued: cancelled at once
    runs.store().settle_attached()
    r = runs.get_run(later)
    assert r["status"] == "queued" and not r["attached"] and r["queue_position"] == 1
    runs.cancel(later)


def test_the_key_says_what_decides_the_numbers_and_an_upload_is_its_sessions_own(home):
    parts = key_parts(tiny())
    assert set(parts) == {"config", "data", "code", "torch", "device", "cpu", "threads"}
    assert run_key(tiny()) == run_key(tiny()) != run_key(tiny(seed=1)) != run_key(tiny(lr=0.002))
    assert run_key(tiny()) == run_key(tiny().replace(name="another name"))
    alice, bob = named_session("alice"), named_session("bob")
    da = api.ingest_zip(class_zip("shapes"), "shapes", alice)["domain"]
    db = api.ingest_zip(class_zip("shapes"), "shapes", bob)["domain"]  # the same bytes, another session
    ka = run_key(tiny().replace(data={"source": da, "target": da}))
    kb = run_key(tiny().replace(data={"source": db, "target": db}))
    assert ka and kb and ka != kb  # Bob can never be handed a run trained on Alice's upload


def test_five_processes_asking_for_a_finished_experiment_get_its_numbers_marked_reused(home):
    args = [sys.executable, "-m", "tl_core", "experiment", "--source", "syndigits", "--target", "uci_digits",
            "--methods", "dann", "--seeds", "0", "--epochs", "1", "--steps", "8", "--json", "--quiet"]
    env = {**os.environ}
    first = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    want = json.loads(first.stdout.strip().splitlines()[-1])
    procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(5)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        got = json.loads(out.strip().splitlines()[-1])
        assert [r["target_acc_mean"] for r in got["results"]] == [r["target_acc_mean"] for r in want["results"]]
        assert got["verdict"] == want["verdict"]
        members = runs.list_runs()
        ids = {r["id"] for r in members if r.get("experiment_id") == got["experiment_id"]}
        assert ids and all(runs.get_run(i)["reused_from"] for i in ids)


def test_a_resumed_run_is_never_reused(home, monkeypatch):
    """A run resumed from its checkpoint matches a fresh one only approximately: it gives up its key."""
    monkeypatch.setattr(runs.jobs, "schedule", lambda st=None: [])
    cfg = tiny("source_only", seed=7)
    first = runs.submit(cfg)
    runs.store().update(first, status="interrupted")
    runs.resume(first)
    assert runs.get_run(first)["run_key"] == ""
    later = runs.submit(cfg)
    assert not runs.get_run(later)["attached"]  # trained itself rather than wait on the resumed one
    for rid in (first, later):
        runs.cancel(rid)


def test_cancel_detaches_the_caller_and_the_training_stops_only_when_no_one_is_left(home):
    cfg = tiny("source_only", seed=21, epochs=3, steps_per_epoch=150)
    first = runs.submit(cfg)
    second, third = runs.submit(cfg), runs.submit(cfg)  # two more sessions asking for the same run
    deadline = time.time() + 120
    while runs.get_run(first)["status"] != "running" and time.time() < deadline:
        runs.schedule()
        time.sleep(0.1)
    pid = runs.get_run(first)["pid"]
    r = runs.cancel(first)  # the first session leaves: the training goes on for the other two
    assert r["status"] == "cancelled" and "went on" in r["reason"]
    heir = runs.get_run(second)
    assert heir["status"] == "running" and heir["attached"] and heir["pid"] == pid
    assert runs.cancel(third)["status"] == "cancelled" and runs.get_run(second)["status"] == "running"
    rows = finish_all([second])
    assert rows[0]["status"] == "finished" and rows[0]["reused_from"] == first  # one training, its numbers
    assert numbers(second) == numbers(first) and len(numbers(second)) == 3

    cfg = tiny("source_only", seed=22, epochs=50, steps_per_epoch=400)
    a, b = runs.submit(cfg), runs.submit(cfg)
    while runs.get_run(a)["status"] != "running" and time.time() < deadline + 120:
        runs.schedule()
        time.sleep(0.1)
    runs.cancel(a)
    assert runs.get_run(b)["status"] == "running"
    runs.cancel(b)  # the last one leaves: the training stops
    rows = finish_all([a, b])
    assert [r["status"] for r in rows] == ["cancelled", "cancelled"]
    deadline = time.time() + 30
    while runs.store().get(a)["pid"] and procs_alive(runs.store().get(a)) and time.time() < deadline:
        time.sleep(0.2)
    assert not procs_alive(runs.store().get(a))  # no worker goes on training for no one


def procs_alive(r):
    from tl_core.runs.procs import alive

    return alive(r["pid"], r["pid_start"])
