"""The planner: an estimate that moves the right way with every setting, and plans that fit a budget
while leaving alone whatever the user set."""
import pytest

from conftest import isolated_home
from tl_core import RunConfig
from tl_core import planner
from tl_core.planner import estimate_seconds, fill, given_fields


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_HOME", str(isolated_home(tmp_path)))
    yield tmp_path


def cfg(method="dann", backbone="lenet", **train):
    return RunConfig().replace(data={"source": "syndigits", "target": "uci_digits"},
                               model={"backbone": backbone, "freeze": 0},
                               method={"name": method, "params": {}}, train=train)


def test_the_estimate_grows_with_the_work():
    base = estimate_seconds(cfg(steps_per_epoch=200))
    assert estimate_seconds(cfg(steps_per_epoch=400)) > base
    assert estimate_seconds(cfg(steps_per_epoch=200, epochs=8)) > estimate_seconds(cfg(steps_per_epoch=200, epochs=4))
    assert estimate_seconds(cfg("source_only", steps_per_epoch=200)) < base  # no target batch, no discriminator
    assert estimate_seconds(cfg("cdan", steps_per_epoch=200)) > base
    assert estimate_seconds(cfg(steps_per_epoch=200, embedding="none")) < base
    lite = cfg(backbone="efficientnet_lite0", steps_per_epoch=30)
    frozen = lite.replace(model={"freeze": 7})
    small = frozen.replace(model={"input_size": 128})
    assert estimate_seconds(lite) > estimate_seconds(frozen) > estimate_seconds(small)


def test_decoding_a_domain_is_counted_once_per_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_HOME", str(tmp_path / "fresh"))  # its own, empty domain cache
    c = cfg(steps_per_epoch=50)
    first = estimate_seconds(c)
    later = estimate_seconds(c, decoded={"syndigits", "uci_digits"})
    assert first - later == pytest.approx(planner.DECODE_S["syndigits"] + planner.DECODE_DEFAULT_S)
    from tl_core.domains import clear_memory_cache, get_domain

    clear_memory_cache()  # an earlier test's in-memory copy would skip writing this home's cache
    get_domain("uci_digits").load()  # now cached in this home
    assert estimate_seconds(c) - later == pytest.approx(planner.DECODE_S["syndigits"])


def test_a_pretrained_backbone_is_planned_to_fit_the_budget():
    c = cfg(backbone="efficientnet_lite0")
    assert estimate_seconds(c) > 3600  # the plain defaults: hours on a CPU
    planned, notes = fill(c, given=set(), budget_s=120)
    assert planned.model.freeze == 8 and planned.model.input_size == 128 and planned.train.lr == 3e-4
    assert estimate_seconds(planned) <= 0.9 * 120
    assert estimate_seconds(planned) >= 0.6 * 120  # and uses most of it
    assert any("frozen" in n for n in notes) and any("budget" in n for n in notes)
    assert planned.train.batch_size == (32 if planner.mem_available_gb() >= 4 else 16)  # fits the memory


def test_what_the_user_set_is_kept():
    c = cfg(backbone="efficientnet_lite0", steps_per_epoch=10).replace(model={"freeze": 3, "input_size": 160})
    planned, _ = fill(c, given={"model.freeze", "model.input_size", "train.steps_per_epoch"}, budget_s=60)
    assert (planned.model.freeze, planned.model.input_size, planned.train.steps_per_epoch) == (3, 160, 10)


def test_a_run_that_fits_is_not_changed_and_a_long_one_is_shortened():
    short = cfg(steps_per_epoch=50, epochs=2)
    assert fill(short, given=set(), budget_s=120)[0] == short
    long = cfg(steps_per_epoch=5000)
    planned, notes = fill(long, given=set(), budget_s=120)
    assert planned.train.steps_per_epoch < 5000 and estimate_seconds(planned) <= 0.9 * 120
    assert notes and "budget" in notes[-1]


def test_a_config_file_names_every_field_so_nothing_is_planned():
    given = given_fields(cfg(backbone="efficientnet_lite0").to_dict())
    assert {"model.freeze", "model.input_size", "train.steps_per_epoch", "train.batch_size"} <= given
    c = cfg(backbone="efficientnet_lite0")
    assert fill(c, given=given, budget_s=120)[0] == c
