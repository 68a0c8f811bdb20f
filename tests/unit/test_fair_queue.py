"""A class of 30 on one server (issue 18, item 3): every session's first experiment is accepted with
the default quotas, and runs start round-robin across sessions, so the first run of every session
starts before any session's second run. The start order comes from the real scheduler; only the
executor is a stand-in that finishes a run the moment it starts (the order is what is tested)."""
import threading

import pytest

from conftest import isolated_home, tiny_config
from tl_core.app import api
from tl_core import runs
from tl_core.runs import executors
from tl_core.store import seats
from tl_core.policy.access import session_from_seat, session_from_token
from tl_core.base.errors import QuotaExceeded


def seated(n: int) -> list:
    """`n` students who each opened a join link made by `python -m tl_core class seats n`."""
    return [session_from_seat(s["token"]) for s in seats.make(n)]


def sess(i: int):
    return session_from_token((f"student{i}-token-" * 8)[:40])[0]


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = isolated_home(tmp_path / "home")
    monkeypatch.setenv("TL_HOME", str(h))
    monkeypatch.setenv("TL_MAX_RUNS", "1")
    for k in ("TL_QUOTA_QUEUED_RUNS", "TL_QUOTA_QUEUED_TOTAL", "TL_QUOTA_QUEUED_SESSIONS"):
        monkeypatch.delenv(k, raising=False)  # the defaults a teacher gets
    return h


class InstantExecutor:
    """Starts a run by recording it and marking it finished at once."""

    def __init__(self):
        self.started: list[str] = []

    def capacity(self) -> int:
        return 1

    def start(self, st, run_id, slot) -> None:
        self.started.append(run_id)
        st.update(run_id, status="finished", ended=1.0)

    def cancel(self, st, r) -> None:  # pragma: no cover - nothing to stop
        pass


def test_thirty_sessions_launch_the_first_visit_experiment_all_accepted_and_served_round_robin(home, monkeypatch):
    real_schedule = runs.schedule
    monkeypatch.setattr(runs.jobs, "schedule", lambda st=None: [])  # everyone launches before anything starts
    students = seated(30)
    accepted, refused, errors = {}, [], []

    def launch(s):
        try:
            i = students.index(s)  # the first visit's preset, each student on seeds of their own: nothing to reuse
            spec, why = api.experiment_from_query({"preset": "quickstart", "seeds": f"{2 * i},{2 * i + 1}"}, s)
            assert spec is not None, why
            accepted[s.owner] = api.launch_experiment(spec, s)
        except QuotaExceeded as e:
            refused.append(str(e))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=launch, args=(s,)) for s in students]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors[:3]
    assert not refused and len(accepted) == 30  # 120 runs, twice the server's run limit: all taken
    rows = runs.store().list(limit=1000)
    assert len(rows) == 120 and {r["status"] for r in rows} == {"queued"}

    # a second experiment of one student waits for room: it counts against the server's run limit
    monkeypatch.setenv("TL_QUOTA_QUEUED_RUNS", "2")
    spec, _ = api.experiment_from_query({}, students[0])
    with pytest.raises(QuotaExceeded, match="TL_QUOTA_QUEUED_TOTAL"):
        api.launch_experiment(spec, students[0])

    owner_of = {r["id"]: r["owner"] for r in rows}
    first_position = runs.get_run(min(rows, key=lambda r: r["created"])["id"])["queue_position"]
    assert first_position == 1
    ex = InstantExecutor()
    monkeypatch.setattr(executors, "current", lambda home=None, reschedule=None: ex)
    monkeypatch.setattr(runs.jobs, "schedule", real_schedule)
    for _ in range(200):
        if not real_schedule():
            break
    assert len(ex.started) == 120
    owners = [owner_of[r] for r in ex.started]
    assert len(set(owners[:30])) == 30  # the first run of every session before any session's second
    for k in range(4):  # and so on, round by round
        assert len(set(owners[30 * k:30 * (k + 1)])) == 30


def test_a_late_session_is_served_before_an_early_sessions_second_run(home, monkeypatch):
    """Strict FIFO would make a student who launched a minute later wait for everyone's whole grid."""

    cfg = tiny_config("source_only", images=200, epochs=1, steps_per_epoch=2, batch_size=8)
    real_schedule = runs.schedule
    monkeypatch.setattr(runs.jobs, "schedule", lambda st=None: [])
    early, late = seated(2)
    early_ids = [runs.submit(cfg.replace(train={"seed": k}), owner=early.owner) for k in range(3)]
    late_id = runs.submit(cfg.replace(train={"seed": 9}), owner=late.owner)
    assert runs.get_run(late_id)["queue_position"] == 2  # behind the early session's first run only
    ex = InstantExecutor()
    monkeypatch.setattr(executors, "current", lambda home=None, reschedule=None: ex)
    while real_schedule():
        pass
    assert ex.started == [early_ids[0], late_id, early_ids[1], early_ids[2]]


def _flood(n_cookies: int, local: bool) -> tuple[int, list[str]]:
    """`n_cookies` browsers that each drop their cookie (a fresh session every time) and launch a 20-run
    custom grid through the pages' API; returns (runs they got queued, distinct refusal texts)."""
    refusals, queued = set(), 0
    for i in range(n_cookies):
        s = session_from_token(None, local=local)[0]  # a new cookie: a stranger to the server
        spec, why = api.experiment_from_query({"source": "syndigits", "target": "uci_digits",
                                               "methods": "dann,cdan,mmd,coral", "seeds": "0,1,2,3"}, s)
        assert spec is not None, why
        try:
            api.launch_experiment(spec, s)
            queued += 20
        except QuotaExceeded as e:
            refusals.add(str(e)[:60])
    return queued, sorted(refusals)


@pytest.mark.parametrize("local", [False, True], ids=["network", "localhost"])
def test_a_hundred_fresh_cookies_cannot_fill_the_queue_and_a_seat_keeps_its_place(home, monkeypatch, tmp_path, local):
    """Issue 29: fresh cookies are not seats. 100 of them launching 20-run grids queue at most twice
    TL_QUOTA_QUEUED_TOTAL runs (on a network server none at all past the anonymous allowance), and a
    seated student's first run is then admitted at the position it would have had with no flood."""
    monkeypatch.setattr(runs.jobs, "schedule", lambda st=None: [])
    total = 60  # TL_QUOTA_QUEUED_TOTAL's default
    classmates = seated(3)
    for i, s in enumerate(classmates[:2]):  # two seated students launched before the flood (own seeds)
        spec, _ = api.experiment_from_query({"preset": "quickstart", "seeds": f"{2 * i},{2 * i + 1}"}, s)
        api.launch_experiment(spec, s)
    queued, refusals = _flood(100, local)
    rows = runs.store().list(limit=10_000)
    unseated = [r for r in rows if r["owner"] not in {s.owner for s in classmates}]
    assert len(unseated) == queued <= 2 * total
    if not local:
        assert queued <= 4 and any("no seat" in r for r in refusals)  # TL_QUOTA_ANON_RUNS
    else:
        assert 0 < queued <= total and refusals  # on one's own machine they train, but never past the total
    me = classmates[2]
    spec, _ = api.experiment_from_query({"preset": "quickstart", "seeds": "4,5"}, me)
    exp = api.launch_experiment(spec, me)  # a seat's first item is admitted whatever the flood
    mine = [r for r in runs.store().list(limit=10_000) if r.get("experiment_id") == exp]
    first = min(runs.get_run(r["id"])["queue_position"] for r in mine)
    assert first == 3  # behind the two seated students' first runs only, as with no flood at all


def test_thirty_sessions_asking_the_same_question_share_one_training(home, monkeypatch):
    """Issue 30: the first-visit experiment launched by 30 students at once is trained once: the first
    student's 4 runs are queued, the 116 others wait on them (attached) and take their numbers."""
    monkeypatch.setattr(runs.jobs, "schedule", lambda st=None: [])
    students = seated(30)
    for s in students:
        spec, _ = api.experiment_from_query({}, s)
        api.launch_experiment(spec, s)
    rows = runs.store().list(limit=1000)
    trained = [r for r in rows if not r["attached_to"]]
    assert len(rows) == 120 and len(trained) == 4
    assert len({r["owner"] for r in trained}) == 1 and runs.store().queue_order() == \
        sorted((r["id"] for r in trained), key=lambda i: runs.get_run(i)["queue_position"])
    ex = InstantExecutor()
    monkeypatch.setattr(executors, "current", lambda home=None, reschedule=None: ex)
    st = runs.store()
    for rid in [r["id"] for r in trained]:  # the 4 runs finish (with results to carry)
        st.update(rid, status="finished", target_acc=0.5, source_acc=0.9, epoch=1, ended=1.0)
    assert st.settle_attached() == 116
    assert {runs.get_run(r["id"])["status"] for r in rows} == {"finished"} and ex.started == []
