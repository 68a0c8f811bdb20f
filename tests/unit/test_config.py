import json

import pytest

from tl_core import ConfigError, RunConfig
from tl_core.config import DataSpec
from tl_core.planning.validation import validate


def test_json_round_trip_and_stable_id():
    cfg = RunConfig().replace(train={"epochs": 3, "seed": 7}, method={"name": "mmd", "params": {"trade_off": 0.5}})
    again = RunConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.config_id() == cfg.config_id()
    assert len(cfg.config_id()) == 8
    assert cfg.replace(train={"seed": 8}).config_id() != cfg.config_id()
    assert cfg.replace(name="my run").config_id() == cfg.config_id()  # names don't change the content id


def test_validate_fills_method_defaults():
    cfg = validate(RunConfig(data=DataSpec("uci_digits", "uci_digits")))
    assert cfg.method.params == {"trade_off": 1.0, "hidden": 500, "batch_norm": False, "gamma": 10.0}


def test_unknown_method_lists_known_ones():
    cfg = RunConfig(data=DataSpec("uci_digits", "uci_digits")).replace(method={"name": "magic"})
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    for known in ("dann", "source_only", "mmd", "coral", "finetune"):
        assert known in str(e.value)


def test_freeze_depth_past_last_stage_says_how_many():
    cfg = RunConfig(data=DataSpec("uci_digits", "uci_digits")).replace(model={"freeze": 4})
    with pytest.raises(ConfigError, match=r"lenet has 3 stages \(conv1, conv2, fc\)"):
        validate(cfg)


@pytest.mark.parametrize("field,value,match", [
    ("train", {"epochs": 0}, "epochs must be at least 1"),
    ("train", {"lr": -1.0}, "learning rate"),
    ("train", {"optimizer": "rmsprop"}, "adam, sgd"),
    ("data", {"target_labels": "some"}, "target labels must be"),
    ("method", {"name": "dann", "params": {"trade_off": 99}}, "between 0.0 and 10.0"),
    ("method", {"name": "dann", "params": {"nope": 1}}, "has no parameter nope"),
    ("method", {"name": "finetune", "params": {}}, "needs labelled target images"),
])
def test_bad_choices_are_explained(field, value, match):
    cfg = RunConfig(data=DataSpec("uci_digits", "uci_digits")).replace(**{field: value})
    with pytest.raises(ConfigError, match=match):
        validate(cfg)


def test_label_regime_accepts_numbers_as_text():
    cfg = validate(RunConfig(data=DataSpec("uci_digits", "uci_digits", target_labels="5")))
    assert cfg.data.target_labels == 5 and cfg.data.labels_per_class() == 5


def test_unknown_fields_in_json_are_refused():
    with pytest.raises(ConfigError, match="Unknown TrainSpec field"):
        RunConfig.from_json(json.dumps({"train": {"epoch": 3}}))
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json("{nope")
