"""Target accuracy estimated without target labels, on a real run: the estimate beside the measured
accuracy, with its interval (the numpy reference is in the unit tier)."""
import pytest

from conftest import isolated_home, tiny_config
from tl_core import runs
from tl_core.cli.common import run_summary


def test_a_run_reports_its_estimate_beside_the_measured_accuracy(tmp_path, monkeypatch):

    monkeypatch.setenv("TL_HOME", str(isolated_home(tmp_path)))
    cfg = tiny_config("source_only", images=200, epochs=1, steps_per_epoch=20)
    rid = runs.submit(cfg, fresh=True)
    r = runs.wait(rid, timeout_s=300)
    assert r["status"] == "finished", r["reason"]
    out = run_summary(rid)
    est, ci = out["target_acc_estimate"], out["target_acc_estimate_ci"]
    assert 0 <= est <= 1 and ci[0] <= est <= ci[1]
    assert out["history"][-1]["target_acc_estimate"] == pytest.approx(est)  # the reported epoch's
