import json
import subprocess
import sys

from conftest import ROOT, isolated_home
from tl_core.planning.validation import validate


def run(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "tl_core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_list_json_describes_everything():
    p = run("list", "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert {"mnist", "usps", "svhn", "uci_digits", "syndigits", "mnistm"} <= {d["name"] for d in info["domains"]}
    assert {"lenet", "resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_lite0"} <= {
        b["name"] for b in info["backbones"]}
    names = {m["name"] for m in info["methods"]}
    assert len(names) >= 16
    assert {"source_only", "target_only", "finetune", "l2sp", "feature_extract", "dann", "cdan", "mcd", "mdd",
            "entropy_min", "pseudo_label", "mcc", "adabn", "importance_weighting", "distill", "mmd", "coral"} <= names
    for m in info["methods"]:
        assert m["summary"] and m["formula"] and m["paper"]


def test_list_plain_has_one_line_each():
    p = run("list")
    assert p.returncode == 0 and "dann" in p.stdout and "lenet" in p.stdout and "mnist" in p.stdout


def test_train_json_prints_one_object_last():
    p = run("train", "--source", "syndigits", "--target", "uci_digits", "--method", "coral", "--epochs", "1",
            "--steps", "5", "--batch-size", "16", "--max-per-domain", "200", "--embedding", "none", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    for key in ("run_id", "status", "source_acc", "target_acc", "wall_s", "config"):
        assert key in out
    assert out["status"] == "finished" and out["config"]["method"]["name"] == "coral"
    assert "epoch 1:" in p.stderr


def test_bad_input_gives_a_message_not_a_traceback():
    p = run("train", "--method", "magic", "--source", "uci_digits", "--target", "uci_digits")
    assert p.returncode == 2
    assert "Unknown method 'magic'" in p.stderr and "Traceback" not in p.stderr
    p = run("train", "--source", "uci_digits", "--target", "uci_digits", "--freeze", "9")
    assert p.returncode == 2 and "lenet has 3 stages" in p.stderr and "Traceback" not in p.stderr
    p = run("train", "--param", "oops")
    assert p.returncode == 2 and "NAME=VALUE" in p.stderr


def test_ingest_accepts_a_zip_and_refuses_a_hostile_one(tmp_path):
    import io
    import os
    import zipfile

    import numpy as np
    from PIL import Image

    def png(i):
        buf = io.BytesIO()
        Image.fromarray(np.full((10, 10, 3), i * 20, np.uint8)).save(buf, "PNG")
        return buf.getvalue()

    good, bad = tmp_path / "shapes.zip", tmp_path / "evil.zip"
    with zipfile.ZipFile(good, "w") as z:
        for c in ("circle", "square"):
            for i in range(5):
                z.writestr(f"shapes/{c}/{i}.png", png(i))
        z.writestr("__MACOSX/._x", b"junk")
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("a/1.png", png(1))
        z.writestr("../../escape.png", png(2))
    env = {**os.environ, "TL_HOME": str(isolated_home(tmp_path / "home"))}
    p = subprocess.run([sys.executable, "-m", "tl_core", "ingest", str(good), "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["classes"] == ["circle", "square"] and out["ignored"] == ["__MACOSX/._x"]
    p = subprocess.run([sys.executable, "-m", "tl_core", "ingest", str(bad)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "outside its folder" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "escape.png").exists()


def test_seeds_run_once_each_and_report_mean_and_std():
    p = run("train", "--source", "syndigits", "--target", "uci_digits", "--method", "source_only", "--epochs", "1",
            "--steps", "5", "--batch-size", "16", "--max-per-domain", "200", "--embedding", "none", "--seeds", "0,1",
            "--selection", "source_val_acc", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    accs = [r["target_acc"] for r in out["runs"]]
    assert out["seeds"] == [0, 1] and out["finished"] == 2 and len(set(out["run_ids"])) == 2
    assert out["target_acc"]["n"] == 2 and abs(out["target_acc"]["mean"] - sum(accs) / 2) < 1e-12
    assert abs(out["target_acc"]["std"] - abs(accs[0] - accs[1]) / 2 ** 0.5) < 1e-12
    shown = [json.loads(run("runs", "show", rid, "--json").stdout) for rid in out["run_ids"]]
    assert [s["config"]["train"]["seed"] for s in shown] == [0, 1]
    assert all(s["config"]["train"]["selection"] == "source_val_acc" for s in shown)
    p = run("train", "--seeds", "0,x")
    assert p.returncode == 2 and "--seeds: seeds are whole numbers" in p.stderr  # config.parse_seeds, the one reading


def _parsed(cmd: str):
    import shlex

    from tl_core.cli import build_parser
    from tl_core.cli.common import config_from_args

    words = shlex.split(cmd)
    assert words[:4] == ["python", "-m", "tl_core", "train"]
    args = build_parser().parse_args(words[3:])
    return config_from_args(args)


def test_the_command_shown_for_a_run_rebuilds_exactly_its_config():
    from tl_core import RunConfig
    from tl_core.app.api import cli_command

    plain = RunConfig().replace(data={"source": "syndigits", "target": "uci_digits"})
    odd = plain.replace(
        data={"target_labels": 5, "max_per_domain": 300},
        model={"backbone": "efficientnet_lite0", "freeze": 9, "pretrained": False, "input_size": 64,
               "bottleneck": 128},
        method={"name": "dann", "params": {"hidden": 1024, "batch_norm": True, "trade_off": 0.3}},
        train={"epochs": 3, "steps_per_epoch": 17, "batch_size": 8, "lr": 0.00012345678, "optimizer": "sgd",
               "weight_decay": 0.0, "augment": False, "amp": False, "device": "cpu", "embedding": "pca",
               "embed_points": 77, "selection": "im", "seeds": (3, 1)})
    for cfg in (validate(plain), validate(odd)):
        cmd = cli_command(cfg)
        assert validate(_parsed(cmd)) == cfg, cmd  # --budget 0: nothing is re-planned


def test_every_config_field_with_a_flag_is_offered_with_its_help_and_choices():
    from tl_core.cli import build_parser
    from tl_core.config import cli_fields

    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    by_flag = {s: a for a in train._actions for s in a.option_strings}
    for _, name, flag, meta in cli_fields():
        action = by_flag[flag]
        assert action.help == meta["help"] and action.dest.endswith("." + name)
        if meta["choices"]:
            assert tuple(action.choices) == tuple(meta["choices"])
    assert {"--no-augment", "--no-pretrained", "--steps", "--seeds"} <= set(by_flag)  # the flags users know
    args = build_parser().parse_args(["train", "--source", "usps"])
    assert getattr(args, "train.epochs") is None  # left out stays unset: the planner may fill it
