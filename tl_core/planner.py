"""Plans that fit the data, the backbone and the machine: a time estimate for any run, and the
settings a user left out, chosen from a time budget.

The estimate is a sum of measured costs on this kind of machine (2 CPU cores; bench/results/
curves.json and plans.json): process start and data loading, training images at the backbone's
measured throughput (scaled by input size, by how much of the network trains, and by the method's
extra work), and per epoch the evaluation passes and the feature map. On a GPU the throughputs are
multiplied by a measured-on-paper factor until a device run records real ones.

`fill` completes a config from a budget: a pretrained backbone keeps all but its last stages frozen
and trains at a small input size (a small folder does not need 224 px on a CPU), the batch follows
the memory available, and the steps follow the budget. Only fields the user did not set change.
"""
from __future__ import annotations

import os
from typing import Any

from .config import RunConfig

DEFAULT_BUDGET_S = 120.0
# Training images per second on 2 CPU cores, everything trainable, at the backbone's native size
# (LeNet 28 px: curves.json; the ImageNet backbones at 224 px: DESIGN.md and plans.json).
TRAIN_IPS = {"lenet": 11000.0, "resnet18": 10.0, "resnet50": 3.0, "mobilenet_v3_small": 40.0,
             "efficientnet_lite0": 24.0}
# Frozen-feature (forward only, eval) images per second at the native size.
EVAL_IPS = {"lenet": 15000.0, "resnet18": 30.0, "resnet50": 10.0, "mobilenet_v3_small": 150.0,
            "efficientnet_lite0": 95.0}
# A method that reads target images adds a per-step cost of its own (a discriminator, a kernel, a
# second view), in units of DANN's 9 ms per step (LeNet, curves.json: 20.5 ms per DANN step against
# 5.8 ms for source only at the same batch; CDAN from the digits benchmark's wall times).
STEP_OVERHEAD_S = 0.009
METHOD_COST = {"cdan": 4.0, "mcd": 2.0, "mdd": 2.0, "mcc": 1.5, "entropy_min": 1.6, "pseudo_label": 3.0,
               "importance_weighting": 2.0}
STARTUP_S = {"lenet": 7.5}  # two processes (the command and its worker), imports, data load
STARTUP_PRETRAINED_S = 9.0  # + timm/torchvision import and the weights
EMBED_S = {"tsne": 1.6, "pca": 0.1, "none": 0.0}
GPU_SPEEDUP = 25.0


def _device_factor(cfg: RunConfig) -> float:
    from .runs import gpu_count

    return GPU_SPEEDUP if cfg.train.device in ("auto", "cuda") and gpu_count() > 0 else 1.0


TEST_IMAGES = {"mnist": 10000, "usps": 2007, "svhn": 26032, "mnistm": 10000, "syndigits": 2000, "uci_digits": 360}


def _test_images(name: str) -> int:
    """Test images of a domain, without decoding it: known sizes for the built-ins, a file count for folders."""
    base = name.split("+", 1)[0]
    if base in TEST_IMAGES:
        return TEST_IMAGES[base]
    from .domains import get_domain
    from .domains.folder import TEST_EVERY

    try:
        root = getattr(get_domain(name), "root", None)
        n = 0
        for d in os.scandir(root) if root else ():
            if d.is_dir():
                n += sum(1 for f in os.scandir(d.path) if f.is_file())
            if n > 50_000:
                break
        return max(1, n // TEST_EVERY) if n else 2000
    except Exception:  # noqa: BLE001 - an estimate must not fail on a domain it cannot read
        return 2000


def _eval_images(cfg: RunConfig) -> int:
    """Images evaluated per epoch: both test sets and the held-out source images (10% of its train split)."""
    s, t = _test_images(cfg.data.source), _test_images(cfg.data.target)
    return s + t + int(0.1 * 4 * s)


def estimate_seconds(cfg: RunConfig) -> float:
    """Wall time of a run on this machine, process start to end."""
    from .backbones import backbone_info
    from .methods import get_method

    info = backbone_info(cfg.model.backbone)
    name = info.name
    size = cfg.model.input_size or info.default_size
    scale = (size / info.default_size) ** 2
    n_stages = max(len(info.stages), 1)
    trainable = 1.0 - cfg.model.freeze / n_stages
    fwd = 1.0 / EVAL_IPS.get(name, 30.0) * scale
    full = 1.0 / TRAIN_IPS.get(name, 10.0) * scale
    per_img = fwd + (full - fwd) * trainable  # frozen stages cost a forward pass, trainable ones fwd + bwd
    method = get_method(cfg.method.name)
    t = cfg.train
    imgs = t.batch_size * (2 if method.uses_target_data else 1)
    dev = _device_factor(cfg)
    step_s = imgs * per_img + (STEP_OVERHEAD_S * METHOD_COST.get(cfg.method.name, 1.0) if method.uses_target_data
                               else 0.0)
    train_s = t.epochs * t.steps_per_epoch * step_s / dev
    n_eval = _eval_images(cfg)
    epoch_s = n_eval * fwd / dev + EMBED_S.get(t.embedding, 0.0) * min(1.0, t.embed_points / 500) ** 1.5
    pretrained = info.has_pretrained and cfg.model.pretrained is not False
    startup = STARTUP_S.get(name, STARTUP_PRETRAINED_S if pretrained else 6.0)
    return startup + train_s + t.epochs * epoch_s


def mem_available_gb() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 8.0


def fill(cfg: RunConfig, given: set[str], budget_s: float = DEFAULT_BUDGET_S) -> tuple[RunConfig, list[str]]:
    """Complete the settings not in `given` (names like "model.freeze", "train.steps_per_epoch") so that
    the run fits `budget_s` on this machine. Returns the config and what was decided, in words."""
    from .backbones import backbone_info

    info = backbone_info(cfg.model.backbone)
    notes: list[str] = []
    model: dict[str, Any] = {}
    train: dict[str, Any] = {}
    pretrained = info.has_pretrained and cfg.model.pretrained is not False
    gpu = _device_factor(cfg) > 1
    if pretrained:
        n = len(info.stages)
        if "model.freeze" not in given:
            model["freeze"] = max(0, n - 2)
            notes.append(f"pretrained backbone: the first {model['freeze']} of {n} stages stay frozen")
        if "model.input_size" not in given and not gpu:
            model["input_size"] = 128
            notes.append("input size 128 px (on a CPU; 224 px costs 3x the time)")
        if "train.batch_size" not in given:
            train["batch_size"] = 32 if mem_available_gb() >= 4 else 16
        if "train.epochs" not in given:
            train["epochs"] = 4
        if "train.lr" not in given:
            train["lr"] = 3e-4
            notes.append("learning rate 3e-4 (pretrained weights move little)")
    cfg = cfg.replace(model=model, train=train) if (model or train) else cfg
    if "train.steps_per_epoch" not in given:
        est = estimate_seconds(cfg)
        if est > budget_s:
            fixed = estimate_seconds(cfg.replace(train={"steps_per_epoch": 0})) if cfg.train.steps_per_epoch else 0
            per_step = (est - fixed) / max(cfg.train.epochs * cfg.train.steps_per_epoch, 1)
            steps = int(max(1, (budget_s - fixed) / max(per_step, 1e-9) / cfg.train.epochs))
            cfg = cfg.replace(train={"steps_per_epoch": steps})
            notes.append(f"{cfg.train.epochs} epochs x {steps} steps to fit the time budget of "
                         f"{budget_s / 60:.1f} min")
    return cfg, notes


def given_fields(cfg_dict: dict[str, Any]) -> set[str]:
    """Every field named in a config dict, as "section.field" (a config file sets them all)."""
    return {f"{sec}.{k}" for sec, vals in cfg_dict.items() if isinstance(vals, dict) for k in vals}

