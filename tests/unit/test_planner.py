"""The planner: an estimate that moves the right way with every setting, and plans that fit a budget
while leaving alone whatever the user set."""
import pytest

from conftest import PACS, isolated_home, needs_pacs
from tl_core import RunConfig
from tl_core.planning import planner
from tl_core.planning.planner import estimate_seconds, plan_to_budget, given_fields
from tl_core.planning.validation import validate


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_HOME", str(isolated_home(tmp_path)))
    # plans are made from the reference figures, on every machine alike; this machine's speed only scales the
    # estimate shown (tests/integration/test_speed.py), so these tests read the estimates as the reference machine's
    monkeypatch.setattr(planner.speed, "factor", lambda backbone, method: 1.0)
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
    from tl_core.data.domains import clear_memory_cache, get_domain

    clear_memory_cache()  # an earlier test's in-memory copy would skip writing this home's cache
    get_domain("uci_digits").load()  # now cached in this home
    assert estimate_seconds(c) - later == pytest.approx(planner.DECODE_S["syndigits"])


@pytest.mark.parametrize("free_gb, batch", [(2.0, 16), (16.0, 32)])
def test_the_planned_batch_follows_the_free_memory(monkeypatch, free_gb, batch):
    monkeypatch.setattr(planner, "mem_available_gb", lambda: free_gb)
    planned, _ = plan_to_budget(cfg(backbone="efficientnet_lite0"), given=set(), budget_s=120)
    assert planned.train.batch_size == batch


def test_a_pretrained_backbone_is_planned_to_fit_the_budget():
    c = cfg(backbone="efficientnet_lite0")
    assert estimate_seconds(c) > 3600  # the plain defaults: hours on a CPU
    planned, notes = plan_to_budget(c, given=set(), budget_s=120)
    # every stage frozen behind a trainable bottleneck; 13,800 images' features at 224 px are over the
    # cache's 2 GB, at 128 px they fit
    m = planned.model
    assert (m.freeze, m.bottleneck, m.input_size, planned.train.lr) == (9, 256, 128, 1e-3)
    assert estimate_seconds(planned) <= 0.9 * 120
    assert any("frozen" in n for n in notes) and any("computed once" in n for n in notes)
    assert planned.train.batch_size in (16, 32)  # what this machine's memory holds: see the next test
    budget = 0.8 * estimate_seconds(planned)  # set-up (caching 13,800 images) and evaluation take most of it
    tight, notes = plan_to_budget(c, given=set(), budget_s=budget)
    assert tight.train.steps_per_epoch < planned.train.steps_per_epoch
    # set-up (caching 13,800 images) and evaluation leave room for fewer steps within this budget: the plan fits
    assert planner._estimate(tight)[0] + planner.COMMAND_S < 0.9 * budget
    assert estimate_seconds(tight) <= 0.9 * budget and not any("over the budget" in n for n in notes)
    # fewer images: little to cache, the steps are the cost
    few, given = c.replace(data={"max_per_domain": 1000}, model={"input_size": 128}), {"model.input_size"}
    roomy = plan_to_budget(few, given=given, budget_s=600)[0]
    fixed, per_step = planner._estimate(roomy)
    budget = (fixed + 0.5 * per_step * roomy.train.epochs * roomy.train.steps_per_epoch + planner.COMMAND_S) / 0.9
    tight, notes = plan_to_budget(few, given=given, budget_s=budget)
    planned_to = 0.9 * budget - planner.COMMAND_S
    assert 0.9 * planned_to <= estimate_seconds(tight) <= planned_to  # fits, and uses most of it
    assert "budget" in notes[-1]


@needs_pacs
def test_a_small_folder_is_planned_at_the_native_size_from_cached_features():
    c = RunConfig().replace(data={"source": f"folder:{PACS / 'photo'}", "target": f"folder:{PACS / 'sketch'}"},
                            model={"backbone": "efficientnet_lite0"})
    planned, notes = plan_to_budget(c, given={"data.source", "data.target", "model.backbone"}, budget_s=120)
    assert (planned.model.freeze, planned.model.bottleneck, planned.model.input_size) == (9, 256, 224)
    assert planned.train.augment is False and "frozen features computed once per image (no augmentation)" in notes
    jittered, _ = plan_to_budget(c, given={"data.source", "data.target", "model.backbone", "train.augment"}, budget_s=120)
    assert jittered.train.augment and jittered.model.input_size == 128  # asked for jitter: no cache, no 224 px
    # the cache is what makes 224 px affordable: without it every step pays the whole network
    uncached = planned.replace(method={"name": "pseudo_label", "params": {}})  # reads pixels: no cache
    assert estimate_seconds(uncached) > 3 * estimate_seconds(planned)


def test_feature_extraction_gets_no_bottleneck_and_a_bottleneck_is_refused_for_it():
    from tl_core.base.errors import ConfigError

    c = cfg("feature_extract", backbone="efficientnet_lite0")
    planned, _ = plan_to_budget(c, given=set(), budget_s=120)
    assert planned.model.bottleneck == 0 and planned.model.freeze == 9
    with pytest.raises(ConfigError, match="bottleneck"):
        validate(c.replace(model={"bottleneck": 256}))


def test_what_the_user_set_is_kept():
    c = cfg(backbone="efficientnet_lite0", steps_per_epoch=10).replace(model={"freeze": 3, "input_size": 160})
    planned, _ = plan_to_budget(c, given={"model.freeze", "model.input_size", "train.steps_per_epoch"}, budget_s=60)
    assert (planned.model.freeze, planned.model.input_size, planned.train.steps_per_epoch) == (3, 160, 10)


def test_a_run_that_fits_is_not_changed_and_a_long_one_is_shortened():
    short = cfg(steps_per_epoch=50, epochs=2)
    assert plan_to_budget(short, given=set(), budget_s=120)[0] == short
    long = cfg(steps_per_epoch=5000)
    planned, notes = plan_to_budget(long, given=set(), budget_s=120)
    assert planned.train.steps_per_epoch < 5000 and estimate_seconds(planned) <= 0.9 * 120
    assert notes and "budget" in notes[-1]


def test_a_config_file_names_every_field_so_nothing_is_planned():
    given = given_fields(cfg(backbone="efficientnet_lite0").to_dict())
    assert {"model.freeze", "model.input_size", "train.steps_per_epoch", "train.batch_size"} <= given
    c = cfg(backbone="efficientnet_lite0")
    assert plan_to_budget(c, given=given, budget_s=120)[0] == c


def test_adversarial_methods_get_a_wider_batchnorm_discriminator_on_a_pretrained_backbone_only():
    planned, notes = plan_to_budget(cfg("dann", backbone="efficientnet_lite0"), given=set(), budget_s=120)
    assert planned.method.params == {"hidden": 1024, "batch_norm": True}
    assert any("discriminator" in n for n in notes)
    assert plan_to_budget(cfg("dann"), given=set(), budget_s=120)[0].method.params == {}  # LeNet keeps its defaults
    mine = cfg("cdan", backbone="efficientnet_lite0").replace(method={"name": "cdan", "params": {"hidden": 64}})
    assert plan_to_budget(mine, given=set(), budget_s=120)[0].method.params == {"hidden": 64}  # what the user set stays
    assert plan_to_budget(cfg("mmd", backbone="efficientnet_lite0"), given=set(), budget_s=120)[0].method.params == {}


@pytest.mark.parametrize("batch_norm", [False, True])
def test_the_discriminator_has_batchnorm_only_when_asked(batch_norm):
    import torch

    from tl_core.methods import get_method

    m = get_method("dann")({"batch_norm": batch_norm})
    m.build(16, 3)
    bns = [x for x in m.modules["disc"].modules() if isinstance(x, torch.nn.BatchNorm1d)]
    assert len(bns) == (2 if batch_norm else 0)


def test_shot_gets_its_recipe_unless_the_user_set_it():
    from tl_core import RunConfig
    from tl_core.planning.resolve import resolve

    cfg = RunConfig().replace(data={"source": "mnist", "target": "usps"}, method={"name": "shot", "params": {}})
    for budget in (0, 120):  # the recipe is part of the method, planned or not
        r = resolve(cfg, set(), budget_s=budget)
        assert r.config.model.bottleneck == 256 and r.config.model.head == "weight_norm"
        assert r.sources["model.head"] == "recipe" and any("recipe" in n for n in r.notes)
    kept = resolve(cfg.replace(model={"head": "linear"}), {"model.head"}).config
    assert kept.model.head == "linear" and kept.model.bottleneck == 256
    plain = resolve(cfg.replace(method={"name": "dann", "params": {}}), set()).config
    assert plain.model.head == "linear" and plain.model.bottleneck == 0


def test_shot_gets_its_authors_schedule_on_a_network_trained_from_scratch_only():
    from tl_core.methods.shot import SHOT
    from tl_core.planning.resolve import resolve

    published = (SHOT.scratch_schedule["train.epochs"], SHOT.scratch_schedule["train.steps_per_epoch"])
    plain = RunConfig().train
    assert published[0] * published[1] > plain.epochs * plain.steps_per_epoch  # longer than the plain default
    digits = RunConfig().replace(data={"source": "mnist", "target": "usps"}, method={"name": "shot", "params": {}})
    for budget in (0, 120):  # the same schedule planned or not: a user sees the authors' recipe in both
        r = resolve(digits, set(), budget_s=budget)
        assert (r.config.train.epochs, r.config.train.steps_per_epoch) == published
        assert r.sources["train.epochs"] == "recipe"
    # a budget it exceeds is said, not met by cutting the published schedule
    assert any("over the budget" in n for n in resolve(digits, set(), budget_s=30).notes)
    mine = resolve(digits.replace(train={"epochs": 6}), {"train.epochs"}, budget_s=0).config
    assert (mine.train.epochs, mine.train.steps_per_epoch) == (6, published[1])  # a field the user set stays theirs
    pretrained = digits.replace(model={"backbone": "efficientnet_lite0"})
    r = resolve(pretrained, set(), budget_s=120)
    assert r.sources.get("train.epochs") != "recipe" and r.config.train.epochs != published[0]  # the plan's schedule


def test_tent_is_priced_with_its_backward_pass_through_frozen_stages(monkeypatch):
    """TENT's test-time phase trains the BatchNorm layers of frozen stages: its steps cost a backward pass
    through them, more so the longer that phase."""
    from tl_core.methods.tent import TENT

    frozen = {"backbone": "efficientnet_lite0", "freeze": 9, "bottleneck": 256, "input_size": 128}
    tent = cfg("tent", steps_per_epoch=30).replace(model=frozen)
    priced = estimate_seconds(tent)
    longer = tent.replace(method={"name": "tent", "params": {"source_phase": 0.2}})
    assert estimate_seconds(longer) > priced
    monkeypatch.setattr(TENT, "adapts_frozen_batchnorm", False)
    assert estimate_seconds(tent) < priced