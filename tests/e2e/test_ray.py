"""Runs on a real Ray cluster (ray.cluster_utils.Cluster: several simulated nodes on this machine):
runs spread over the nodes, a node removed mid-run, a cancel, and the CLI's executor field."""
import json
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import isolated_home, ROOT, tiny_config
from live_server import CHROMIUM, FLAGS, Server
from tl_core import runs

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402


def cfg(epochs=2, steps=20, seed=0):
    return tiny_config(source="uci_digits", target="syndigits", epochs=epochs, steps_per_epoch=steps,
                       embedding="pca", embed_points=50, seed=seed)


def wait_for(pred, timeout_s=120.0, what="the condition"):
    end = time.time() + timeout_s
    while time.time() < end:
        runs.schedule()
        v = pred()
        if v:
            return v
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """A head node with no CPU of its own (the run store's actor lives there) and two 1-CPU workers."""
    from tl_core.runs import cluster

    monkeypatch.setenv("TL_HOME", str(isolated_home(tmp_path)))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    monkeypatch.setenv("TL_RAY_ADDRESS", c.address)
    cluster._EXECUTORS.clear()
    yield c, nodes
    for r in runs.list_runs():
        if r["status"] in ("queued", "starting", "running"):
            runs.cancel(r["id"])
    cluster.shutdown()
    monkeypatch.delenv("TL_RAY_ADDRESS")
    c.shutdown()


def test_runs_are_spread_over_the_nodes_and_reach_the_store_through_ray(cluster):
    ids = [runs.submit(cfg(seed=s)) for s in (0, 1)]
    done = wait_for(lambda: all(runs.get_run(i)["status"] in ("finished", "failed", "interrupted") for i in ids),
                    what="both runs to end")
    assert done
    recs = [runs.get_run(i) for i in ids]
    assert all(r["status"] == "finished" for r in recs), [(r["status"], r["reason"]) for r in recs]
    assert all(r["executor"] == "ray" for r in recs)
    # reuse is off on a cluster (its machines may differ), and the record says so
    assert all(not r["run_key"] and "Ray cluster" in r["reuse_note"] for r in recs)
    assert len({r["node"] for r in recs}) == 2  # one CPU a node: the cluster put one run on each
    assert all(r["peak_mb"] and r["peak_mb"] > 50 for r in recs)  # a Ray task records its peak memory too
    for i in ids:  # metrics, embeddings and checkpoints arrived in the store through the actor
        hist, _ = runs.read_metrics(i)
        assert [h["epoch"] for h in hist] == [1, 2]
        assert runs.read_embedding(i)["epoch"] == 2
        assert runs.load_model(i).classes == [str(d) for d in range(10)]


def test_a_node_removed_mid_run_is_retried_once_from_its_last_checkpoint(cluster):
    c, nodes = cluster
    rid = runs.submit(cfg(epochs=6, steps=60))
    wait_for(lambda: runs.checkpoint_path(rid, "last") is not None, what="the first checkpoint")
    node = runs.get_run(rid)["node"]
    victim = next(n for n in nodes if n.node_id.startswith(node.split(":")[-1]))
    c.remove_node(victim)
    wait_for(lambda: runs.get_run(rid)["status"] in ("finished", "failed", "interrupted"), timeout_s=240,
             what="the retried run to end")
    r = runs.get_run(rid)
    assert r["status"] == "finished", r["reason"]
    assert r["node"] != node  # it went on elsewhere
    from tl_core.runs import store

    kinds = [e["kind"] for e in store().read("SELECT kind FROM events WHERE run_id=?", (rid,))]
    assert "interrupted" in kinds  # said so in its record
    hist, _ = runs.read_metrics(rid)
    assert [h["epoch"] for h in hist] == list(range(1, 7))  # each epoch once: the retry resumed, not restarted


def test_cancel_stops_a_remote_run_within_seconds(cluster):
    rid = runs.submit(cfg(epochs=50, steps=200))
    wait_for(lambda: runs.get_run(rid)["status"] == "running" and runs.read_progress(rid), what="the run to start")
    runs.cancel(rid)
    # the run needs minutes to finish: a cancel that did not stop it times out here (a hang, not a speed)
    wait_for(lambda: runs.get_run(rid)["status"] == "cancelled", timeout_s=60, what="the cancel")


def test_the_cli_reports_its_executor(tmp_path):
    env = {**os.environ, "TL_HOME": str(isolated_home(tmp_path)), "RAY_AUTH_MODE": "disabled"}
    cmd = [sys.executable, "-m", "tl_core", "train", "--source", "uci_digits", "--target", "syndigits", "--backbone",
           "lenet", "--method", "dann", "--epochs", "1", "--steps", "20", "--json", "--quiet"]
    for address, want in (("local", "ray"), ("", "local")):
        p = subprocess.run(cmd, cwd=ROOT, env={**env, "TL_RAY_ADDRESS": address}, capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        out = json.loads(p.stdout.strip().splitlines()[-1])
        assert out["status"] == "finished" and out["executor"] == want and out["node"]


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")
def test_an_experiment_launched_from_the_app_with_a_ray_address_trains_live_on_ray(tmp_path):
    """The app with TL_RAY_ADDRESS=local (a private Ray instance): the sidebar says where runs train, a
    launched experiment's runs go to Ray and their progress shows on the page as for local runs."""
    from playwright.sync_api import sync_playwright

    from tl_core.store import Store

    home = isolated_home(tmp_path / "home")
    srv = Server(home, env={"TL_RAY_ADDRESS": "local", "RAY_AUTH_MODE": "disabled"})
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = b.new_page(viewport={"width": 1400, "height": 2000})
            page.goto(srv.url + "/?source=uci_digits&target=syndigits&methods=dann&seeds=0")
            page.get_by_text("Runs train on the Ray cluster").first.wait_for(timeout=120_000)
            page.get_by_role("button", name="Launch experiment").click()
            st = Store(home)

            def rows():
                return [dict(r) for r in st.read("SELECT id, status, executor, epoch FROM runs")]

            end = time.time() + 240
            while time.time() < end and not any(r["epoch"] and r["epoch"] >= 1 for r in rows()):
                time.sleep(1)
            rs = rows()
            assert rs and all(r["executor"] == "ray" for r in rs if r["status"] != "queued"), rs
            assert any(r["epoch"] >= 1 for r in rs), rs
            # live on the page, as for local runs: the grid's progress moves past 0 %
            page.get_by_text(re.compile(r"· [1-9]\d*% of the grid")).first.wait_for(timeout=120_000)
            assert not page.locator("[data-testid='stException']").count()
            page.screenshot(path=str(tmp_path / "ray.png"))
            b.close()
    finally:
        srv.stop()


def test_an_unreachable_cluster_leaves_runs_queued_and_says_so(tmp_path):
    """A cluster that does not answer: the submit returns at once with the run queued (never a hang
    or a crash), and where-runs-train says the cluster cannot be reached."""
    env = {**os.environ, "TL_HOME": str(isolated_home(tmp_path)), "RAY_AUTH_MODE": "disabled",
           "TL_RAY_ADDRESS": "127.0.0.1:1", "TL_RAY_CONNECT_TIMEOUT_S": "3"}
    p = subprocess.run([sys.executable, "-m", "tl_core", "train", "--source", "uci_digits", "--target", "syndigits",
                        "--epochs", "1", "--steps", "5", "--detach", "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1])["status"] == "queued"
    code = "from tl_core.app.server import executor_summary as s; import json; print(json.dumps(s()))"
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["executor"] == "ray" and not out["ok"] and "cannot be reached" in out["text"], out
