"""Readings that hold (issue 19): every number carries its provenance and its interval, the same
method resolves to the same config through every door, folder targets are evaluated on every image,
and a recorded result can be re-run and checked."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, isolated_home, needs_mnist, needs_pacs, PACS
from tl_core.planning.validation import validate

TINY = ["--epochs", "2", "--steps", "3", "--batch-size", "16", "--max-per-domain", "200", "--embedding", "none"]


def cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "tl_core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def last_json(p) -> dict:
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@needs_mnist
def test_a_run_says_which_data_code_and_machine_it_read_and_how_uncertain_it_is(tmp_path):
    out = last_json(cli("train", "--source", "mnist", "--target", "usps", "--method", "source_only", *TINY, "--json",
                        env={"TL_HOME": str(isolated_home(tmp_path / "home"))}))
    prov = out["provenance"]
    assert prov["data"]["mnist"]["variant"] == "full" and prov["data"]["mnist"]["train_images"] == 60_000
    assert prov["data"]["usps"]["test_images"] == 2007 and len(prov["data"]["mnist"]["fingerprint"]) == 16
    assert prov["code"]["commit"] and prov["machine"]["torch"] and prov["machine"]["threads"] >= 1
    assert prov["config_sources"]["data.source"] == "user" and prov["config_sources"]["train.lr"] == "default"
    lo, hi = out["target_acc_ci"]
    assert lo < out["target_acc"] < hi and out["target_n"] == 2007 and "2,007" in out["target_eval"]


def test_a_run_on_the_starter_pack_says_so(tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    out = last_json(cli("train", "--source", "mnist", "--target", "usps", "--method", "source_only", *TINY, "--json",
                        env={"TL_HOME": str(tmp_path / "home"), "TL_DATA_DIR": str(empty), "TL_OFFLINE": "1"}))
    assert out["provenance"]["data"]["mnist"]["variant"] == "starter"
    assert out["provenance"]["data"]["mnist"]["train_images"] == 10_000


def test_shot_resolves_to_the_same_model_through_every_door():
    """The CLI (planned or not), an experiment, a preset-style grid and the app's submit all give SHOT
    its recipe when the user left the model alone."""
    from tl_core import RunConfig
    from tl_core.cli import build_parser
    from tl_core.cli.common import resolved_from_args
    from tl_core.experiments import from_methods
    from tl_core.planning.resolve import resolve

    def model_of(cfg):
        m = cfg.model
        return m.backbone, m.bottleneck, m.head, m.freeze

    doors = {}
    for budget in ("120", "0"):
        args = build_parser().parse_args(["train", "--source", "usps", "--target", "mnist", "--method", "shot",
                                          "--seed", "3", "--budget", budget, "--quiet"])
        doors[f"cli, budget {budget}"] = resolved_from_args(args).config
    spec = from_methods("usps", "mnist", ["shot"], (3,))
    doors["experiment"] = next(c for _, _, c in spec.configs() if c.method.name == "shot")
    draft = RunConfig().replace(data={"source": "usps", "target": "mnist"}, method={"name": "shot", "params": {}},
                                train={"seed": 3})
    doors["app submit"] = resolve(draft).config  # what api.submit resolves a page's draft with
    models = {door: model_of(c) for door, c in doors.items()}
    assert len(set(models.values())) == 1, models
    assert models["experiment"][1:3] == (256, "weight_norm")


@needs_pacs
def test_a_folder_target_is_evaluated_on_every_image_whose_label_training_never_sees():
    from tl_core.data.loaders import prepare
    from tl_core.config import DataSpec
    from tl_core.scores.stats import accuracy_ci

    spec = DataSpec(source=f"folder:{PACS / 'photo'}", target=f"folder:{PACS / 'sketch'}")
    d = prepare(spec, seed=0)
    assert len(d.y_target_test) == 350 and "all 350 target images" in d.target_eval
    lo, hi = accuracy_ci(0.5, len(d.y_target_test))
    assert hi - lo < 0.12  # narrower than ± 6 points (the 70-image test fifth gave ± 11)
    five = prepare(DataSpec(source=spec.source, target=spec.target, target_labels=5), seed=0)
    assert len(five.y_target_test) == 350 - 35  # the 35 labelled images are not evaluated on
    digits = prepare(DataSpec(source="uci_digits", target="syndigits"), seed=0)
    assert "test split" in digits.target_eval  # built-in domains keep their official test split


def test_reproduce_reruns_a_recorded_run_and_says_it_reproduced(tmp_path):
    env = {"TL_HOME": str(isolated_home(tmp_path / "home"))}
    out = last_json(cli("train", "--source", "syndigits", "--target", "uci_digits", "--method", "dann", *TINY,
                        "--json", env=env))
    rec = tmp_path / "run.json"
    rec.write_text(json.dumps(out))
    again = last_json(cli("reproduce", str(rec), "--json", "--quiet", env=env))
    assert again["reproduced"] and again["recorded"] == out["target_acc"]
    assert again["new"] == pytest.approx(out["target_acc"], abs=0.02)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**out, "target_acc_ci": [0.999, 1.0]}))
    p = cli("reproduce", str(bad), "--quiet", env=env)
    assert p.returncode == 1 and "not reproduced" in p.stdout


def test_an_experiment_reports_each_gain_with_its_interval(tmp_path):
    out = last_json(cli("experiment", "--source", "syndigits", "--target", "uci_digits", "--methods", "coral",
                        "--epochs", "1", "--steps", "3", "--seeds", "0", "--json", "--quiet",
                        env={"TL_HOME": str(isolated_home(tmp_path / "home"))}, timeout=600))
    coral = next(r for r in out["results"] if r["method"] == "coral")
    lo, hi = coral["gain_ci"]
    assert lo <= coral["gain"] <= hi
    assert ("Cannot tell" in out["verdict"]) == (lo <= 0 <= hi)  # the verdict is written from the interval


def test_the_same_run_resolves_to_the_same_config_through_every_door():
    """(source, target, method, seed, budget) through the CLI's train, an experiment and the Train
    page's "fit the plan" give one identical config (a pretrained backbone: the plan decides a lot)."""
    from tl_core import RunConfig
    from tl_core.app.strategy import plan_for_budget
    from tl_core.cli import build_parser
    from tl_core.cli.common import resolved_from_args
    from tl_core.experiments import from_methods

    src, tgt, method, seed, budget = "syndigits", "uci_digits", "dann", 2, 90
    args = build_parser().parse_args(["train", "--source", src, "--target", tgt, "--backbone", "efficientnet_lite0",
                                      "--method", method, "--seed", str(seed), "--budget", str(budget), "--quiet"])
    cli = resolved_from_args(args).config
    spec = from_methods(src, tgt, [method], (seed,), {"model": {"backbone": "efficientnet_lite0"}}, budget_s=budget)
    exp = next(c for _, _, c in spec.configs() if c.method.name == method)
    draft = RunConfig().replace(data={"source": src, "target": tgt}, model={"backbone": "efficientnet_lite0"},
                                method={"name": method, "params": {}}, train={"seed": seed})
    page = RunConfig.from_dict(plan_for_budget(draft.to_dict(), budget)[0])

    def plain(c):
        d = validate(c).to_dict()
        d.pop("name")
        return d

    assert plain(cli) == plain(exp) == plain(page)
    assert cli.model.freeze == 9 and cli.model.bottleneck == 256  # the plan did decide
