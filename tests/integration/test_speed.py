"""Estimates true on the machine that runs them (issue 30, item 5): finished runs record their wall
against the planner's uncorrected estimate, and later estimates of that backbone and method follow the
median; plans stay made from the reference figures, so one command trains the same steps everywhere."""
import pytest

from tl_core import RunConfig
from tl_core.planning import planner, speed
from tl_core.planning.resolve import resolve


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def count_probes(monkeypatch) -> list:
    """The probe's subprocess calls from now on (each one a measurement)."""
    calls = []
    real = speed.subprocess.run

    def counting(*a, **kw):
        calls.append((a, kw))
        return real(*a, **kw)

    monkeypatch.setattr(speed.subprocess, "run", counting)
    return calls


def cfg(method="dann", backbone="lenet"):
    return RunConfig().replace(data={"source": "mnist", "target": "usps"}, model={"backbone": backbone},
                               method={"name": method, "params": {}})


def test_estimates_follow_this_machines_finished_runs_and_plans_do_not(home, monkeypatch):
    monkeypatch.setattr(speed, "probe_s", lambda: speed.REF_PROBE_S)  # a host as fast as the reference
    c = cfg()
    raw = planner.raw_estimate(c)
    assert planner.estimate_seconds(c) == pytest.approx(raw)  # nothing measured here yet
    planned = resolve(c, set(), budget_s=120).config
    for ratio in (1.9, 2.1, 2.0, 40.0):  # a slow host; the last one waited on a busy machine: ignored
        speed.record("lenet", "dann", ratio * raw, raw)
    assert speed.factor("lenet", "dann") == pytest.approx(2.0)
    assert planner.estimate_seconds(c) == pytest.approx(2.0 * raw)
    assert speed.factor("lenet", "coral") == pytest.approx(2.0)  # the backbone's runs stand in
    assert speed.factor("efficientnet_lite0", "dann") == pytest.approx(2.0)  # then every run of this host
    assert resolve(c, set(), budget_s=120).config == planned  # the same command, the same plan
    for _ in range(speed.KEEP):
        speed.record("lenet", "dann", 0.5 * raw, raw)
    assert speed.factor("lenet", "dann") == pytest.approx(0.5)  # the last runs count, not the first


def test_a_run_is_stopped_by_its_own_time_not_by_waiting(home):
    from tl_core.runs import wall_limit_reason

    assert "own CPU time" in wall_limit_reason(60) and "wall time" in wall_limit_reason(60, own_time=False)


def test_a_new_machine_is_probed_once_and_estimated_by_its_own_speed(home, monkeypatch):
    calls = count_probes(monkeypatch)
    p = speed.probe_s()
    assert p and p > 0 and len(calls) == 1  # the default run's steps on this machine, timed
    assert speed.probe_s() == p and len(calls) == 1  # kept: asked again, not measured again
    c = cfg()
    assert planner.estimate_seconds(c) == pytest.approx(planner.raw_estimate(c) * min(max(
        p / speed.REF_PROBE_S, 0.2), 5.0))
    # a run's thread count is part of what is probed: another count is measured on its own, with that count
    other = 1 if speed.run_threads() > 1 else 2
    monkeypatch.setattr(speed, "run_threads", lambda: other)
    q = speed.probe_s()
    assert len(calls) == 2 and calls[-1][1]["env"]["TL_THREADS"] == str(other) and q > 0
    for times in (1.0, 3.0):  # a host three times slower than the reference is estimated three times longer
        monkeypatch.setattr(speed, "probe_s", lambda: times * speed.REF_PROBE_S)
        assert planner.estimate_seconds(c) == pytest.approx(times * planner.raw_estimate(c))
    speed.record("lenet", "dann", 1.2 * planner.raw_estimate(c), planner.raw_estimate(c))
    assert speed.factor("lenet", "dann") == pytest.approx(1.2)  # a finished run here outweighs the probe


def test_a_probe_read_on_a_busy_machine_is_taken_again_later(home, monkeypatch):
    """A step reads slower beside a training run: a probe taken while others kept the machine busy is kept
    marked busy (every process reads the same), and taken again later."""
    # the machine 95 % busy during the first probe (far more than the probe's own CPU time), then 1 %
    busy = iter([(0, 0), (95_000, 100_000), (0, 0), (1_000, 100_000)])
    monkeypatch.setattr(speed, "_cpu_jiffies", lambda: next(busy))
    calls = count_probes(monkeypatch)
    p = speed.probe_s()
    assert p and len(calls) == 1 and not speed.probe_known()  # used, marked busy
    assert speed.probe_s() == p and len(calls) == 1  # within RETRY_S: the same reading, no new probe
    monkeypatch.setattr(speed, "RETRY_S", 0.0)
    q = speed.probe_s()
    assert len(calls) == 2 and speed.probe_known() and speed.probe_s() == q and len(calls) == 2  # quiet: kept
