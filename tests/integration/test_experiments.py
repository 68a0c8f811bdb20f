"""Experiments: the grid, its record in the store, the summary and verdict, presets, CLI and access."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT, isolated_home
from tl_core import ConfigError, QuotaExceeded, TLError
from tl_core.app import api
from tl_core import experiments as X
from tl_core import store as store_mod
from tl_core.policy.access import Session
from tl_core.experiments import Strategy, ExperimentSpec

ALICE, BOB = Session("a" * 32), Session("b" * 32)
TINY = {"train": {"epochs": 1, "steps_per_epoch": 3, "embedding": "none"}}


@pytest.fixture
def home(home, monkeypatch):
    """The shared test home, where nothing starts: these tests read records."""
    monkeypatch.setattr("tl_core.runs.jobs.schedule", lambda st=None: [])
    return home


def spec(**kw) -> ExperimentSpec:
    d = dict(source="uci_digits", target="syndigits", strategies=(Strategy("DANN", "dann"), Strategy("CORAL", "coral")),
             seeds=(0, 1), base=TINY)
    d.update(kw)
    return ExperimentSpec(**d).normalised()


# -- the grid -----------------------------------------------------------------------------------

def test_the_baseline_is_always_there_and_first():
    s = spec()
    assert [x.label for x in s.strategies] == ["source only", "DANN", "CORAL"]
    assert s.strategies[0].role == "baseline"
    up = ExperimentSpec("usps", "mnist", (Strategy("all labels", "target_only", data={"target_labels": "all"},
                                                   role="upper"), Strategy("DANN", "dann"))).normalised()
    assert [x.role for x in up.strategies] == ["baseline", "", "upper"]


def test_configs_are_seed_major_and_carry_each_strategys_settings():
    s = ExperimentSpec("mnist", "usps", (Strategy("5 labels", "finetune", data={"target_labels": 5}),
                                         Strategy("frozen", "source_only", model={"freeze": 2})), seeds=(3, 4),
                       base=TINY).normalised()
    got = [(s.strategies[i].label, seed, c.data.target_labels, c.model.freeze, c.train.seed, c.train.epochs)
           for i, seed, c in s.configs()]
    assert got == [("source only", 3, "none", 0, 3, 1), ("5 labels", 3, 5, 0, 3, 1), ("frozen", 3, "none", 2, 3, 1),
                   ("source only", 4, "none", 0, 4, 1), ("5 labels", 4, 5, 0, 4, 1), ("frozen", 4, "none", 2, 4, 1)]


@pytest.mark.parametrize("bad, words", [
    ({"source": "mnist", "target": "usps", "strategies": [{"method": "dann", "shell": "rm -rf"}]}, "may set"),
    ({"source": "mnist", "target": "usps", "strategies": "dann"}, "list of objects"),
    ({"source": "mnist", "target": "usps", "strategies": [], "seeds": ["0; drop"]}, "whole numbers"),
    ({"source": "mnist", "target": "usps", "strategies": [], "seeds": list(range(9))}, "1 to 5"),
    ({"source": "mnist", "target": "usps", "strategies": [], "base": {"home": "/etc"}}, "common settings"),
    ({"source": "", "target": "usps", "strategies": []}, "source and a target"),
    ({"source": "mnist", "target": "usps", "strategies": [{"method": "dann", "label": "x"}, {"method": "mmd", "label": "x"}]},
     "share a name"),
    ({"source": "mnist", "target": "usps", "strategies": [{"method": "dann", "label": f"s{i}"} for i in range(9)]},
     "at most"),
    ({"source": "mnist", "target": "usps", "strategies": [], "extra": 1}, "Unknown experiment field"),
])
def test_a_spec_from_outside_is_checked_field_by_field(bad, words):
    with pytest.raises(ConfigError, match=words):
        ExperimentSpec.from_dict(bad)


def test_a_bad_strategy_is_named_in_the_message():
    with pytest.raises(ConfigError, match="Strategy 'mine'.*nosuch"):
        ExperimentSpec("mnist", "usps", (Strategy("mine", "nosuch"),)).normalised().configs()


def test_spec_round_trips_through_json():
    s = spec()
    assert ExperimentSpec.from_dict(json.loads(s.to_json())) == s


# -- the summary and the verdict (pure functions over records) ------------------------------------------

def record(s: ExperimentSpec, accs: dict[str, list[float]], n: int = 2007, source_acc: float = 0.99) -> dict:
    runs = []
    for label, values in accs.items():
        for seed, a in enumerate(values):
            runs.append({"id": f"{label}-{seed}", "strategy": label, "seed": seed, "status": "finished",
                         "target_acc": a, "source_acc": source_acc, "wall_s": 10.0, "created": seed, "ended": 20.0,
                         "target_n": n, "best_epoch": 1})
    return {"id": "x1", "spec": s, "runs": runs}


def histories(e: dict, n: int = 2007) -> dict:
    """Per-image results as runs record them: each run right on its own random set of images (with the
    run's accuracy), so two runs disagree both ways, as real runs do."""
    import zlib

    import numpy as np

    from tl_core.scores.stats import pack_bits

    out = {}
    for r in e["runs"]:
        order = np.random.default_rng(zlib.crc32(r["id"].encode())).permutation(n)
        correct = np.zeros(n, bool)
        correct[order[:round(r["target_acc"] * n)]] = True
        out[r["id"]] = [{"epoch": 1, "target_acc": r["target_acc"], "target_n": n, "classes": list("0123456789"),
                         "target_correct": pack_bits(correct)}]
    return out


def summarise(s, accs, **kw):
    e = record(s, accs, **kw)
    return X.summary(e, histories(e, kw.get("n", 2007)))


def by(summary, label):
    return next(r for r in summary["results"] if r["strategy"] == label)


def test_gain_mean_and_std_are_over_seeds_against_the_baseline():
    s = summarise(spec(), {"source only": [0.70, 0.74], "DANN": [0.88, 0.90], "CORAL": [0.75, 0.73]})
    base, dann = by(s, "source only"), by(s, "DANN")
    assert base["gain"] == 0.0 and base["target_acc_mean"] == pytest.approx(0.72)
    assert dann["target_acc_mean"] == pytest.approx(0.89) and dann["target_acc_std"] == pytest.approx(0.01414, abs=1e-4)
    assert dann["gain"] == pytest.approx(0.17) and dann["n_seeds"] == 2
    lo, hi = dann["gain_ci"]
    assert 0 < lo < 0.17 < hi  # the interval holds the gain and stays above zero
    assert "**DANN** won" in s["verdict"] and "+17.0 points" in s["verdict"] and "more than the luck" in s["verdict"]
    assert s["verdict_certain"] and "Runner-up: CORAL" in s["verdict"]


def test_a_gain_within_the_seed_spread_cannot_be_told():
    s = summarise(spec(), {"source only": [0.60, 0.80], "DANN": [0.75, 0.77], "CORAL": [0.5, 0.5]})
    assert "Cannot tell" in s["verdict"] and not s["verdict_certain"]
    assert by(s, "DANN")["gain_ci"][0] < 0 < by(s, "DANN")["gain_ci"][1]
    assert not by(s, "DANN")["negative_transfer"]


def test_negative_transfer_is_flagged_only_when_its_interval_is_below_zero():
    clear = summarise(spec(), {"source only": [0.80, 0.81], "DANN": [0.60, 0.62], "CORAL": [0.79, 0.805]})
    assert by(clear, "DANN")["negative_transfer"] and "negative transfer" in by(clear, "DANN")["flags"][0]
    assert by(clear, "DANN")["gain_ci"][1] < 0
    assert not by(clear, "CORAL")["negative_transfer"]  # 0.75 points below: noise
    assert "Negative transfer: DANN" in clear["verdict"] and "No strategy beat source only" in clear["verdict"]
    noisy = summarise(spec(), {"source only": [0.60, 0.95], "DANN": [0.70, 0.72], "CORAL": [0.1, 0.1]})
    assert not by(noisy, "DANN")["negative_transfer"] and "cannot tell" in by(noisy, "DANN")["flags"][0]


def test_seeds_that_agree_tell_and_seeds_that_disagree_cannot():
    """Every adapted run below every baseline run (the 'hurts' preset as once measured): negative
    transfer over 3 seeds and over 2; a second seed that agrees never makes the verdict less sure."""
    three = summarise(spec(seeds=(0, 1, 2)), {"source only": [0.481, 0.423, 0.479],
                                              "DANN": [0.388, 0.256, 0.215], "CORAL": [0.47, 0.46, 0.48]})
    assert by(three, "DANN")["negative_transfer"] and "Negative transfer: DANN" in three["verdict"]
    one = summarise(spec(seeds=(0,)), {"source only": [0.70], "DANN": [0.82], "CORAL": [0.71]})
    two = summarise(spec(), {"source only": [0.70, 0.72], "DANN": [0.82, 0.85], "CORAL": [0.71, 0.72]})
    assert one["verdict_certain"] and two["verdict_certain"]
    split = summarise(spec(), {"source only": [0.60, 0.80], "DANN": [0.72, 0.74], "CORAL": [0.5, 0.5]})
    assert not split["verdict_certain"]  # one seed says +12, the other -6


def test_one_seed_on_few_images_cannot_tell_unless_the_interval_says_so():
    """One seed on a 70-image target (PACS sketch's old test split): 1 image is 1.4 points."""
    small = summarise(spec(seeds=(0,)), {"source only": [0.429], "DANN": [0.357], "CORAL": [0.443]}, n=70)
    assert "Cannot tell" in small["verdict"] and not by(small, "DANN")["negative_transfer"]
    assert not small["verdict_certain"]
    big = summarise(spec(seeds=(0,)), {"source only": [0.70], "DANN": [0.85], "CORAL": [0.75]}, n=2007)
    assert "won" in big["verdict"] and big["verdict_certain"]


def test_a_run_that_never_learned_its_source_is_a_failed_run_not_negative_transfer():
    e = record(spec(), {"source only": [0.80, 0.81], "DANN": [0.10, 0.12], "CORAL": [0.80, 0.80]})
    for r in e["runs"]:
        if r["strategy"] == "DANN" and r["seed"] == 1:
            r["source_acc"] = 0.10  # chance on 10 classes: it never trained
    s = X.summary(e, histories(e))
    dann = by(s, "DANN")
    assert not dann["negative_transfer"] and "failed run" in dann["flags"][0]
    assert "Failed runs: DANN" in s["verdict"]


def test_one_seed_that_tells_on_its_images_does_not_claim_to_know_the_seeds_luck():
    one = summarise(spec(seeds=(0,)), {"source only": [0.70], "DANN": [0.90], "CORAL": [0.71]})
    assert one["verdict_certain"] and "one seed" in one["verdict"] and "luck of the seed" not in one["verdict"]
    two = summarise(spec(), {"source only": [0.70, 0.71], "DANN": [0.90, 0.905], "CORAL": [0.71, 0.70]})
    assert two["verdict_certain"] and "more than the luck of the seed" in two["verdict"]
    worse = by(summarise(spec(seeds=(0,)), {"source only": [0.80], "DANN": [0.60], "CORAL": [0.80]}), "DANN")
    assert worse["negative_transfer"] and "one seed, so not the seed's" in worse["flags"][0]


def test_a_seed_that_learned_its_source_far_worse_than_the_baseline_is_flagged_as_such():
    """DANN in the "hurts" preset: one seed reaches 33 % on its own source where source only reaches
    97 % (not chance, so not a failed run): its target accuracy is read as a training problem."""
    e = record(spec(), {"source only": [0.47, 0.46], "DANN": [0.48, 0.27], "CORAL": [0.46, 0.47]}, source_acc=0.97)
    h = histories(e)
    for r in e["runs"]:
        if r["strategy"] == "DANN" and r["seed"] == 1:
            r["source_acc"] = 0.33
            h[r["id"]] = [{**h[r["id"]][0], "source_acc": 0.33}]
    s = X.summary(e, h)
    dann = by(s, "DANN")
    poor = [f for f in dann["flags"] if "learned its source poorly" in f]
    assert poor == [poor[0]] and poor[0].startswith("seed 1:") and "33%" in poor[0] and "97%" in poor[0]
    assert not any(x["never_learned"] for x in dann["runs"])
    assert not any("poorly" in f for f in by(s, "CORAL")["flags"] + by(s, "source only")["flags"])


def test_a_run_that_learned_its_source_then_adapted_away_from_it_is_not_a_failed_run():
    """TENT's test-time phase moves a model that learned its source towards the target, and its source
    accuracy may fall near chance at the end: its best epoch says it trained."""
    e = record(spec(), {"source only": [0.80, 0.81], "DANN": [0.85, 0.86], "CORAL": [0.80, 0.80]})
    h = histories(e)
    for r in e["runs"]:
        if r["strategy"] == "DANN":
            r["source_acc"] = 0.12
            last = h[r["id"]][0]
            h[r["id"]] = [{**last, "source_acc": 0.95}, {**last, "epoch": 2, "source_acc": 0.12}]
    dann = by(X.summary(e, h), "DANN")
    assert not any("failed run" in f for f in dann["flags"]) and not any(x["never_learned"] for x in dann["runs"])


def test_collapse_and_falling_accuracy_are_read_from_the_history():
    k = 10
    collapsed = [[0] * k for _ in range(k)]
    for i in range(k):
        collapsed[i][i % 2] = 50  # every class predicted as 0 or 1
    healthy = [[50 if i == j else 0 for j in range(k)] for i in range(k)]
    e = record(spec(), {"source only": [0.7, 0.7], "DANN": [0.2, 0.2], "CORAL": [0.72, 0.71]})
    for r in e["runs"]:
        r["best_epoch"] = 2 if r["id"] == "DANN-0" else 1
    hist = {"DANN-0": [{"epoch": 1, "target_acc": 0.6, "target_confusion": healthy},
                       {"epoch": 2, "target_acc": 0.2, "target_confusion": collapsed, "classes": list("0123456789")}],
            "CORAL-0": [{"epoch": 1, "target_acc": 0.7, "target_confusion": healthy}]}
    s = X.summary(e, hist)
    flags = " ".join(by(s, "DANN")["flags"])
    assert "collapsed" in flags and "0, 1" in flags and "fell from 60.0% (epoch 1) to 20.0%" in flags
    assert not by(s, "CORAL")["flags"] and "Collapse: DANN" in s["verdict"]


def test_published_references_only_for_plain_lenet_methods():
    s = X.summary(record(spec(source="usps", target="mnist", base={}), {"source only": [0.7], "DANN": [0.8],
                                                                        "CORAL": [0.7]}))
    assert by(s, "DANN")["reference"] == pytest.approx(0.952) and by(s, "CORAL")["reference"] is None
    other = X.summary(record(spec(source="usps", target="mnist", base={"model": {"backbone": "resnet18"}}),
                             {"source only": [0.7], "DANN": [0.8], "CORAL": [0.7]}))
    assert by(other, "DANN")["reference"] is None


def test_no_verdict_before_the_baseline_finishes():
    e = record(spec(), {"DANN": [0.8]})
    e["runs"].append({"id": "b", "strategy": "source only", "seed": 0, "status": "queued", "target_acc": None,
                      "source_acc": None, "wall_s": None, "created": 0})
    assert X.summary(e)["verdict"].startswith("No verdict yet")


def test_a_run_stopped_by_the_time_limit_is_named_in_the_verdict_and_never_counted_as_done():
    """Issue 30, item 5: cancelled, failed or time-limited runs are not done; the verdict says why it lacks one."""
    e = record(spec(), {"DANN": [0.8]})
    e["runs"].append({"id": "b", "strategy": "source only", "seed": 0, "status": "cancelled", "target_acc": None,
                      "source_acc": None, "wall_s": None, "created": 0, "config": e["runs"][0].get("config"),
                      "reason": "stopped at the time limit of 30 min per run set by the server's owner "
                                "(TL_QUOTA_RUN_WALL_S); the last checkpoint is kept."})
    v = X.summary(e)["verdict"]
    assert v.startswith("1 of 2 runs stopped by the server's time limit") and "the verdict needs it" in v
    assert "No verdict yet" not in v  # nothing is pending: it will not finish by itself


# -- the store: one object with its runs -------------------------------------------------------------

def test_launch_records_the_experiment_and_all_its_runs(home):
    from tl_core import runs

    eid = X.launch(spec(), owner=ALICE.owner)
    e = X.get(eid)
    assert [(r["strategy"], r["seed"]) for r in e["runs"]] == [("source only", 0), ("DANN", 0), ("CORAL", 0),
                                                               ("source only", 1), ("DANN", 1), ("CORAL", 1)]
    assert {r["experiment_id"] for r in e["runs"]} == {eid} and e["owner"] == ALICE.owner
    other = X.launch(spec(seeds=(0,)), owner=ALICE.owner)  # the same configs again: new run ids, own members
    assert len(X.get(other)["runs"]) == 3 and not {r["id"] for r in X.get(other)["runs"]} & {r["id"] for r in e["runs"]}
    assert len(runs.list_runs()) == 9
    assert X.progress(X.get(eid))["status"] == "queued" and X.progress(X.get(eid))["eta_s"] > 0
    # nothing has run yet: the ETA is the estimates recorded at launch (the first run of a domain pays its
    # decode), read back rather than made again
    assert X.progress(e)["eta_s"] == pytest.approx(sum(r["estimate_s"] for r in e["runs"]))
    for r in e["runs"]:
        r["estimate_s"] = 100.0
    assert X.progress(e)["eta_s"] == pytest.approx(600.0)


def test_a_session_quota_counts_an_experiment_once_and_the_server_counts_runs(home):
    X.launch(spec(), owner=ALICE.owner, limits=(2, 100))  # 6 runs, one item of work
    X.launch(spec(), owner=ALICE.owner, limits=(2, 100))
    with pytest.raises(QuotaExceeded, match="You already have 2"):
        X.launch(spec(), owner=ALICE.owner, limits=(2, 100))
    X.launch(spec(), owner=BOB.owner, limits=(2, 15))  # 12 queued + 6 > 15, but Bob's first item: admitted
    with pytest.raises(QuotaExceeded, match="queue is full"):
        X.launch(spec(), owner=BOB.owner, limits=(2, 15))  # his second counts against the server's runs
    from tl_core import runs

    assert len(runs.list_runs()) == 18  # a refused experiment leaves nothing behind
    assert len(runs.store().list_experiments()) == 3


def test_an_experiment_survives_a_lost_index(home):
    eid = X.launch(spec(seeds=(0,)), owner=ALICE.owner)
    store_mod._STORES.clear()
    (home / "runs.db").unlink()
    e = X.get(eid)
    assert e["owner"] == ALICE.owner and [r["strategy"] for r in e["runs"]] == ["source only", "DANN", "CORAL"]


# -- the app's view: sessions, links ------------------------------------------------------------------

def test_others_cannot_see_an_unshared_experiment_until_it_is_shared(home):
    
    eid = api.launch_experiment(spec(seeds=(0,)).to_dict(), ALICE)
    assert [e["id"] for e in api.list_experiments(ALICE)] == [eid]
    assert api.list_experiments(BOB) == []
    with pytest.raises(TLError, match="that you can see"):
        api.view_experiment(BOB, eid)
    for bad in ("../../etc/passwd", f"../experiments/{eid}", f"{eid}/../{eid}", eid + "\x00"):
        with pytest.raises(TLError, match="that you can see"):  # an id is an id, never a path: even the owner's
            api.view_experiment(ALICE, bad)
    assert api.view_experiment(ALICE, eid)["mine"] is True
    api.cancel_experiment(ALICE, eid)
    api.publish_experiment(ALICE, eid, True)
    assert api.view_experiment(BOB, eid)["mine"] is False
    with pytest.raises(TLError, match="belongs to another session"):
        api.delete_experiment(BOB, eid)
    api.delete_experiment(ALICE, eid)
    assert api.list_experiments(ALICE) == []


@pytest.mark.parametrize("query, ok", [
    ({}, "quickstart"), ({"preset": "labels", "seeds": "0,1"}, "labels"),
    ({"preset": "nosuch"}, "Unknown preset"), ({"preset": "quickstart", "seeds": "0;1"}, "whole numbers"),
    ({"source": "mnist", "target": "usps", "methods": "dann,nosuch"}, "nosuch"),
    ({"source": "mnist"}, "needs source, target and methods"),
    ({"preset": "quickstart", "seeds": "1" * 35}, "from 0 to 2,147,483,647"),
])
def test_a_link_describes_an_experiment_or_says_why_not(query, ok):
    
    spec_d, why = api.experiment_from_query(query, ALICE)
    if spec_d is None:
        assert ok in why
    else:
        assert spec_d["preset"] == ok
        assert api.experiment_from_query(api.experiment_query(spec_d), ALICE)[0] == spec_d  # the link round-trips


def test_an_experiment_too_large_for_the_server_is_refused_before_anything_is_queued(home, monkeypatch):
    
    monkeypatch.setenv("TL_QUOTA_EXPERIMENT_RUNS", "4")
    plan = api.plan_experiment(spec().to_dict(), ALICE)
    assert "at most 4" in plan["why"]
    with pytest.raises(ConfigError, match="at most 4"):
        api.launch_experiment(spec().to_dict(), ALICE)
    assert api.list_experiments(ALICE) == []


def test_no_run_longer_than_the_servers_limit_is_offered_and_a_budget_per_run_fits_it(home, monkeypatch):
    """A custom grid whose runs would be stopped half-way by the run limit cannot launch; the page's
    time per run (`budget=` in its link) plans each run to fit, as `train --budget` does."""
    from tl_core.planning import speed
    from tl_core.planning.planner import estimate_seconds

    # the plan's arithmetic on the reference machine: plans are made in its seconds while estimates follow this
    # host's speed (tests/integration/test_speed.py), so on a host over 2x slower the fitted run would read
    # longer than a limit set from the plain one (a CI machine did)
    monkeypatch.setattr(speed, "factor", lambda backbone, method: 1.0)
    q = {"source": "uci_digits", "target": "syndigits", "methods": "dann", "seeds": "0"}
    plain, _ = api.experiment_from_query(q, ALICE)
    longest = max(estimate_seconds(c) for _, _, c in ExperimentSpec.from_dict(plain).configs())
    monkeypatch.setenv("TL_QUOTA_RUN_WALL_S", str(int(longest * 0.6)))
    plan = api.plan_experiment(plain, ALICE)
    assert plan["runs"] == 0 and "longer than the" in plan["why"] and "time budget" in plan["why"]
    with pytest.raises(ConfigError, match="longer than the"):
        api.launch_experiment(plain, ALICE)
    assert api.list_experiments(ALICE) == []

    budget = int(longest * 0.3)
    fitted, why = api.experiment_from_query({**q, "budget": str(budget)}, ALICE)
    assert why == "" and fitted["budget_s"] == budget
    assert api.experiment_from_query(api.experiment_query(fitted), ALICE)[0] == fitted  # the link round-trips
    plan = api.plan_experiment(fitted, ALICE)
    assert plan["why"] == "" and plan["runs"] == 2 and plan["estimate_s"] <= 2 * longest * 0.6
    assert "each planned to about" in api.plan_words(plan)[0]
    assert api.launch_experiment(fitted, ALICE)
    from tl_core.policy.access import CLI_SESSION

    assert api.plan_experiment(plain, CLI_SESSION)["why"] == ""  # the command line has no limit
    for bad in ("-5", "1e9", "soon"):
        assert "budget in a link" in api.experiment_from_query({**q, "budget": bad}, ALICE)[1]


# -- presets -----------------------------------------------------------------------------------------

def test_every_preset_builds_a_valid_grid_with_a_lesson():
    from tl_core.experiments.presets import PRESETS, list_presets

    assert {"quickstart", "alignment", "freeze", "labels", "hurts"} <= set(PRESETS)
    for p in list_presets():
        assert p["title"] and len(p["lesson"]) > 100
        spec = PRESETS[p["name"]].spec().normalised()
        members = spec.configs()
        assert members, p["name"]
        # one baseline, trained first; source only, and in "freeze" the fully frozen backbone (the head alone)
        (base,) = [s for s in spec.strategies if s.role == "baseline"]
        assert spec.strategies[0] == base and base.method == "source_only", p["name"]
        assert members[0][2].method.name == "source_only", p["name"]
        if p["name"] == "freeze":
            assert base.model == {"freeze": 9} and members[0][2].model.freeze == 9


# -- the command line: the same path ------------------------------------------------------------------

def cli(*args, home):
    import os

    env = {**os.environ, "TL_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "tl_core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_cli_experiment_runs_the_grid_and_prints_the_result(tmp_path):
    home = isolated_home(tmp_path / "h")
    p = cli("experiment", "--source", "uci_digits", "--target", "syndigits", "--methods", "dann", "--epochs", "1",
            "--steps", "5", "--seeds", "0,1", "--json", home=home)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["status"] == "finished" and "wall_s" in out and out["verdict"]  # the key; speed is a bench figure
    res = {r["method"]: r for r in out["results"]}
    assert set(res) == {"source_only", "dann"} and res["source_only"]["gain"] == 0.0
    assert res["dann"]["n_seeds"] == 2 and 0 <= res["dann"]["target_acc_mean"] <= 1
    assert res["dann"]["gain"] == pytest.approx(res["dann"]["target_acc_mean"] - res["source_only"]["target_acc_mean"])
    shown = cli("experiment", "--show", out["experiment_id"], "--json", home=home)
    assert json.loads(shown.stdout.strip().splitlines()[-1])["results"][1]["runs"] == res["dann"]["runs"]
    runs = json.loads(cli("runs", "list", "--json", home=home).stdout)
    assert len(runs) == 4  # the experiment's runs are ordinary runs too


def test_cli_lists_presets_and_refuses_a_bad_request(tmp_path):
    home = isolated_home(tmp_path / "h")
    info = json.loads(cli("list", "--json", home=home).stdout)
    assert {p["name"] for p in info["presets"]} >= {"quickstart", "hurts"}
    assert all(p["title"] and p["lesson"] for p in info["presets"])
    bad = cli("experiment", "--preset", "nosuch", home=home)
    assert bad.returncode == 2 and "Unknown preset" in bad.stderr and "Traceback" not in bad.stderr
    both = cli("experiment", "--preset", "quickstart", "--methods", "dann", home=home)
    assert both.returncode == 2 and "not both" in both.stderr


# -- the page ------------------------------------------------------------------------------------------

def test_the_app_opens_on_the_first_visit_preset_ready_to_launch(home):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.title[0].value.startswith("Experiments")
    assert any("Does adaptation help?" in m.value for m in at.markdown)
    launch = next(b for b in at.button if b.label == "Launch experiment")
    assert not launch.disabled
    launch.click().run()
    assert not at.exception, at.exception
    eid = at.query_params["experiment"][0] if isinstance(at.query_params["experiment"], list) else at.query_params["experiment"]
    assert X.get(eid)["preset"] == "quickstart" and len(X.get(eid)["runs"]) == 4


@pytest.mark.parametrize("query, words", [({"experiment": "xdoesnotexist"}, "no experiment"),
                                          ({"preset": "nosuch"}, "does not describe an experiment")])
def test_a_bad_link_says_so_without_a_traceback(home, query, words):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    assert any(words in e.value for e in at.error), [e.value for e in at.error]


# -- several small runs of one experiment share a GPU ----------------------------------------------------

def test_pack_without_gpus_keeps_one_run_at_a_time():
    from tl_core.runs import assign_slots

    assert assign_slots([], [("a", 1.0), ("b", 1.0)], gpus=0, limit=1) == [("a", 0)]
    assert assign_slots([(0, 1.0)], [("b", 1.0)], gpus=0, limit=1) == []


def test_pack_puts_small_runs_together_on_a_gpu_and_keeps_the_queue_order():
    from tl_core.runs import SMALL_SHARE as q, assign_slots

    assert assign_slots([], [(f"r{i}", q) for i in range(6)], gpus=1, limit=16) == [(f"r{i}", 0) for i in range(4)]
    assert assign_slots([(0, q)], [("big", 1.0), ("small", q)], gpus=1, limit=16) == []  # the big one waits; so does the rest
    assert assign_slots([], [("big", 1.0), ("s1", q), ("s2", q)], gpus=2, limit=16) == [("big", 0), ("s1", 1), ("s2", 1)]
    assert assign_slots([], [(f"r{i}", q) for i in range(6)], gpus=1, limit=2) == [("r0", 0), ("r1", 0)]


def test_a_run_declares_its_share_of_the_device():
    from tl_core.config import RunConfig
    from tl_core.runs import device_share

    assert device_share(RunConfig().to_dict()) == 0.25
    assert device_share(RunConfig().replace(model={"backbone": "resnet18"}).to_dict()) == 1.0


def test_progress_counts_only_finished_runs_as_done():
    from tl_core import RunConfig
    from tl_core.app.api import progress_words

    cfg = RunConfig().to_dict()
    statuses = ["finished", "cancelled", "failed", "queued"]
    e = {"runs": [{"id": str(i), "status": s, "config": cfg, "wall_s": 10.0 if s == "finished" else None,
                   "estimate_s": 10.0, "reason": "TL_QUOTA_RUN_WALL_S" if s == "cancelled" else ""}
                  for i, s in enumerate(statuses)]}
    p = X.progress(e)
    assert p["runs_done"] == 1 and p["runs_stopped"] == 2 and p["time_limited"] == 1
    assert progress_words(p).startswith("1 of 4 runs done · 2 stopped (1 by the server's time limit)")


def test_the_verdict_names_a_class_the_winner_loses_beyond_its_interval():
    """An adapted strategy that wins overall but lets one class collapse (issue 33: DANN +8.6 points on PACS
    cartoons with elephant 2 of 50) is named in the verdict with both accuracies; a class within the noise is not."""
    import numpy as np

    e = record(spec(), {"source only": [0.70, 0.71], "DANN": [0.90, 0.91], "CORAL": [0.71, 0.70]}, n=1000)
    h = histories(e, 1000)

    def confusion(right: list[int]) -> list[list[int]]:
        cm = np.zeros((10, 10), int)
        for c, r in enumerate(right):  # 100 images a class: r right, the rest to the next class
            cm[c, c], cm[c, (c + 1) % 10] = r, 100 - r
        return cm.tolist()

    for r in e["runs"]:
        right = [70] * 10
        if r["strategy"] == "DANN":
            right = [98] * 10
            right[3], right[5] = 2, 64  # 3 collapses; 5 is a little worse, within the noise
        h[r["id"]][0]["target_confusion"] = confusion(right)
    v = X.summary(e, h)["verdict"]
    assert "But it loses 3 (2.0% right against 70.0%) to source only" in v
    assert "5 (" not in v.split("But it loses")[1].split("to source only")[0]
    for r in e["runs"]:  # no class lost: no such sentence
        h[r["id"]][0]["target_confusion"] = confusion([98 if r["strategy"] == "DANN" else 70] * 10)
    assert "But it loses" not in X.summary(e, h)["verdict"]
