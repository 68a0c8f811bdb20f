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
# Calibrated on the preset runs' per-epoch timings (metrics.jsonl `train_s` and `wall_s`, bench/presets.py
# on 2 CPU cores; LeNet at batch 64, EfficientNet-Lite0 at 128 px, batch 32, frozen 9/7/5/0 of 9).
# Training images per second, everything trainable, at the backbone's native size (the ImageNet
# backbones other than Lite0: DESIGN.md's figures at 224 px).
TRAIN_IPS = {"lenet": 7600.0, "resnet18": 10.0, "resnet50": 3.0, "mobilenet_v3_small": 40.0,
             "efficientnet_lite0": 24.0}
# Frozen-feature (forward only, eval) images per second at the native size.
EVAL_IPS = {"lenet": 60000.0, "resnet18": 30.0, "resnet50": 10.0, "mobilenet_v3_small": 150.0,
            "efficientnet_lite0": 85.0}
# A method's own work per step beyond its images' forward and backward (a discriminator, a kernel,
# a labelled target batch), in seconds. Measured on LeNet: DANN 17.5 ms per step against 2 x 8.4 ms
# of images, CDAN 29 ms, MMD and CORAL none beyond the images, fine-tuning's labelled target batch
# 3 ms, target-only 6 ms. The rest are scaled from their extra forward passes (MCD, MDD: a second
# head; pseudo-labelling: a teacher pass) and are not yet measured.
STEP_EXTRA_S = {"dann": 0.001, "cdan": 0.0125, "finetune": 0.003, "target_only": 0.006, "mcd": 0.008,
                "mdd": 0.008, "mcc": 0.004, "entropy_min": 0.002, "pseudo_label": 0.009,
                "importance_weighting": 0.004}
# Both domains in one pass through a pretrained backbone cost more per image than one (larger
# activations on a CPU; the PACS folder runs at 128 px: DANN 380-434 ms a step for 2 x 32 images
# against 155-160 ms for source only's 32 with 8 of 9 stages frozen, 425 against 195 with 7).
PRETRAINED_TWO_DOMAIN_FACTOR = 1.3
# Worker start to first step: interpreter and imports (~1.5 s, not in the run's own wall_s), data and
# model (~1.4 s). A pretrained backbone adds timm's import and its weights.
STARTUP_S = {"lenet": 3.0}
STARTUP_PRETRAINED_S = 4.5
COMMAND_S = 2.5  # the CLI process itself, once per command (an experiment's runs share it)
# The first run to use a domain in a TL_HOME decodes it into the cache (measured on the presets' first
# runs: MNIST and USPS, from the starter pack or the full files, about 1.3 s each; rendering the
# synthetic digits about 9 s); later runs read the cache.
DECODE_S = {"syndigits": 9.0}
DECODE_DEFAULT_S = 1.3
# A from-scratch backbone on colour input (either domain in colour: rendered digits, MNIST-M, SVHN)
# costs more per image than on grey (LeNet on 28 px: 11.6 ms a step against 10.2, DANN 26.8 against 23.0).
COLOUR_FACTOR = 1.15
# Every epoch: the checkpoint, the metrics line, the domain-gap and selection scores (the preset runs'
# time between epochs, less evaluation and the map).
EPOCH_FIXED_S = 0.35
# Per epoch, at 500 points (a t-SNE's cost grows faster than linearly; 300 points measured 0.25 s).
EMBED_S = {"tsne": 0.5, "pca": 0.05, "none": 0.0}
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


def _decode_seconds(name: str) -> float:
    """Decoding a domain this home has not cached yet (0 once it has)."""
    from .domains import get_domain

    try:
        if get_domain(name).cache_path().exists():
            return 0.0
    except Exception:  # noqa: BLE001 - an estimate must not fail on a domain it cannot read
        return 0.0
    return DECODE_S.get(name.split("+", 1)[0], DECODE_DEFAULT_S)


def _colour(cfg: RunConfig) -> bool:
    """Whether the model will see colour images (either domain has three channels)."""
    from .domains import get_domain

    try:
        return any(get_domain(n).channels == 3 for n in (cfg.data.source, cfg.data.target))
    except Exception:  # noqa: BLE001 - an estimate must not fail on a domain it cannot read
        return True


def _eval_images(cfg: RunConfig) -> int:
    """Images evaluated per epoch: both test sets and the held-out source images (10% of its train split)."""
    s, t = _test_images(cfg.data.source), _test_images(cfg.data.target)
    return s + t + int(0.1 * 4 * s)


def estimate_seconds(cfg: RunConfig, decoded: set[str] | frozenset[str] = frozenset()) -> float:
    """Wall time of a run's worker on this machine, process start to end. `decoded`: domains an
    earlier run queued with this one will have cached by the time it starts."""
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
    pretrained = info.has_pretrained and cfg.model.pretrained is not False
    if pretrained and method.uses_target_data:
        per_img *= PRETRAINED_TWO_DOMAIN_FACTOR
    if not pretrained and _colour(cfg):
        per_img *= COLOUR_FACTOR
    step_s = imgs * per_img + STEP_EXTRA_S.get(cfg.method.name, 0.001 if method.uses_target_data else 0.0)
    train_s = t.epochs * t.steps_per_epoch * step_s / dev
    n_eval = _eval_images(cfg)
    epoch_s = EPOCH_FIXED_S + n_eval * fwd / dev + EMBED_S.get(t.embedding, 0.0) * min(1.0, t.embed_points / 500) ** 1.5
    startup = STARTUP_S.get(name, STARTUP_PRETRAINED_S if pretrained else 3.5)
    decode = sum(_decode_seconds(n) for n in {cfg.data.source, cfg.data.target} - set(decoded))
    return startup + decode + train_s + t.epochs * epoch_s


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
            # only the last stage trains: on the PACS folders (350 images a domain) training two stages
            # overfits the source (photo -> sketch, seeds 0 and 1: source only 28.6 / 25.7 % with 7 frozen,
            # 42.9 / 30.0 % with 8; DANN 25.7 / 25.7 against 44.3 / 30.0 %)
            model["freeze"] = max(0, n - 1)
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
        # plan to 90 % of the budget less the command's own start: a margin for a machine busier than
        # the one the constants were measured on, so that the run ends within what the user was shown
        target_s = budget_s * 0.9 - COMMAND_S
        if est > target_s:
            fixed = estimate_seconds(cfg.replace(train={"steps_per_epoch": 0})) if cfg.train.steps_per_epoch else 0
            per_step = (est - fixed) / max(cfg.train.epochs * cfg.train.steps_per_epoch, 1)
            steps = int(max(1, (target_s - fixed) / max(per_step, 1e-9) / cfg.train.epochs))
            cfg = cfg.replace(train={"steps_per_epoch": steps})
            notes.append(f"{cfg.train.epochs} epochs x {steps} steps to fit the time budget of "
                         f"{budget_s / 60:.1f} min")
    return cfg, notes


def given_fields(cfg_dict: dict[str, Any]) -> set[str]:
    """Every field named in a config dict, as "section.field" (a config file sets them all)."""
    return {f"{sec}.{k}" for sec, vals in cfg_dict.items() if isinstance(vals, dict) for k in vals}

