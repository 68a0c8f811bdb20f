"""Plans that fit the data, the backbone and the machine: a time estimate for any run, and the
settings a user left out, chosen from a time budget.

The estimate is a sum of measured costs on this kind of machine (2 CPU cores; each figure, with where it was
measured, in reference.json): process start and data loading, training images at the backbone's
measured throughput (scaled by input size, by how much of the network trains, and by the method's
extra work), and per epoch the evaluation passes and the feature map. When the run will cache its
frozen stages' output (prefix_cache.py), one pass over its images replaces their per-step cost. On a
GPU the throughputs are multiplied by a measured-on-paper factor until a device run records real ones.

`plan_to_budget` completes a config from a budget: a pretrained backbone stays frozen behind a trainable
bottleneck, its features computed once (at the native size when that fits the memory and half the
budget, else at 128 px), adversarial methods get a discriminator sized for ImageNet features, a
small source is not trained past ~100 passes, the batch follows the memory available, and the steps
follow the budget. Only fields the user did not set change.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tl_core.models.backbones import backbone_info
from tl_core.config import RunConfig
from tl_core.data.loaders import evaluated_images, transductive
from tl_core.data.domains import get_domain
from tl_core.data.domains.folder import scan_folder, TEST_EVERY
from tl_core.data.domains.names import parse as parse_name
from tl_core.base.errors import ConfigError
from tl_core.base.machine import gpu_count, mem_available_gb
from tl_core.methods import get_method
from tl_core.models.prefix_cache import plan_cache, skip_reason
from tl_core.planning import speed

DEFAULT_BUDGET_S = 120.0
SOURCE_PASSES = 100  # a frozen backbone's plan stops after about this many passes over the source

# The measured costs the estimates are made of, each with where it was measured: data, not code
# (reference.json; the development machine's seconds, scaled to this machine by `speed`).
_REFERENCE = json.loads((Path(__file__).with_name("reference.json")).read_text())["figures"]
TRAIN_IPS = _REFERENCE["TRAIN_IPS"]["value"]
EVAL_IPS = _REFERENCE["EVAL_IPS"]["value"]
STEP_EXTRA_S = _REFERENCE["STEP_EXTRA_S"]["value"]
PRETRAINED_TWO_DOMAIN_FACTOR = _REFERENCE["PRETRAINED_TWO_DOMAIN_FACTOR"]["value"]
STARTUP_S = _REFERENCE["STARTUP_S"]["value"]
STARTUP_PRETRAINED_S = _REFERENCE["STARTUP_PRETRAINED_S"]["value"]
COMMAND_S = _REFERENCE["COMMAND_S"]["value"]
DECODE_S = _REFERENCE["DECODE_S"]["value"]
DECODE_DEFAULT_S = _REFERENCE["DECODE_DEFAULT_S"]["value"]
DECODE_FOLDER_IMG_S = _REFERENCE["DECODE_FOLDER_IMG_S"]["value"]
COLOUR_FACTOR = _REFERENCE["COLOUR_FACTOR"]["value"]
EPOCH_FIXED_S = _REFERENCE["EPOCH_FIXED_S"]["value"]
EMBED_S = _REFERENCE["EMBED_S"]["value"]
GPU_SPEEDUP = _REFERENCE["GPU_SPEEDUP"]["value"]
CACHED_IMG_S = _REFERENCE["CACHED_IMG_S"]["value"]
PREFIX_IPS = _REFERENCE["PREFIX_IPS"]["value"]


def _device_factor(cfg: RunConfig) -> float:

    return GPU_SPEEDUP if cfg.train.device in ("auto", "cuda") and gpu_count() > 0 else 1.0


TEST_IMAGES = {"mnist": 10000, "usps": 2007, "svhn": 26032, "mnistm": 10000, "syndigits": 2000, "uci_digits": 360}
TRAIN_IMAGES = {"mnist": 60000, "usps": 7291, "svhn": 73257, "mnistm": 60000, "syndigits": 10000, "uci_digits": 1437}


def _folder_images(name: str) -> int | None:
    """Images in a folder domain (counted up to 50,000), None for a built-in one or an unreadable folder."""
    try:
        root = getattr(get_domain(name), "root", None)
        if not root:
            return None
        return sum(len(f) for f in scan_folder(root).values()) or None  # a cached scan: no second listing
    except Exception:  # noqa: BLE001 - an estimate must not fail on a domain it cannot read
        return None


def _base(name: str) -> str:
    """A domain name without its shifts, as the grammar reads it (a name it refuses is its own base)."""
    try:
        return parse_name(name).base
    except ConfigError:
        return name


def _test_images(name: str) -> int:
    """Test images of a domain, without decoding it: known sizes for the built-ins, a file count for folders."""
    base = _base(name)
    if base in TEST_IMAGES:
        return TEST_IMAGES[base]
    n = _folder_images(name)
    return max(1, n // TEST_EVERY) if n else 2000


def _train_images(name: str, cap: int | None) -> int:
    base = _base(name)
    n = TRAIN_IMAGES.get(base) or ((_folder_images(name) or 10000) - _test_images(name))
    return min(n, cap) if cap else n


def _decode_seconds(name: str) -> float:
    """Decoding a domain this home has not cached yet (0 once it has)."""
    try:
        if get_domain(name).cache_path().exists():
            return 0.0
    except Exception:  # noqa: BLE001 - an estimate must not fail on a domain it cannot read
        return 0.0
    n = _folder_images(name)
    return n * DECODE_FOLDER_IMG_S if n else DECODE_S.get(_base(name), DECODE_DEFAULT_S)


def _colour(cfg: RunConfig) -> bool:
    """Whether the model will see colour images (either domain has three channels)."""
    try:
        return any(get_domain(n).channels == 3 for n in (cfg.data.source, cfg.data.target))
    except Exception:  # noqa: BLE001 - an estimate must not fail on a domain it cannot read
        return True


def _eval_images(cfg: RunConfig) -> int:
    """Images a run evaluates over all its epochs: both test sets and the held-out source images (10% of its
    train split), interim epochs on their samples (`data.evaluated_images`); a folder target without all its
    labels is evaluated on every image (see `data.transductive`)."""
    s, t = _test_images(cfg.data.source), _test_images(cfg.data.target)
    if transductive(cfg.data):
        t = _folder_images(cfg.data.target) or t
    e, sel = cfg.train.epochs, cfg.train.selection
    return sum(evaluated_images(n, e, sel) for n in (s, t, int(0.1 * 4 * s)))


def _passes(cfg: RunConfig, method) -> int:
    """Images a run puts through the network without a cache: its steps' and its evaluations'."""
    t = cfg.train
    return t.epochs * t.steps_per_epoch * t.batch_size * method.domains_per_step() + _eval_images(cfg)


def _cache_plan(cfg: RunConfig, method, passes: int | None = None) -> tuple[int, float] | None:
    """(images, bytes) of the frozen-prefix cache the run will build, or None when it will not: the
    questions Trainer._make_prefix_cache asks, with the activation size estimated from the backbone.
    `passes` None: assume the run is long enough for the cache to pay."""
    info = backbone_info(cfg.model.backbone)
    m, t = cfg.model, cfg.train
    pretrained = info.has_pretrained and m.pretrained is not False
    if skip_reason(pretrained, m.freeze, method.needs_pixels, t.augment, t.steps_per_epoch):
        return None
    cap = cfg.data.max_per_domain
    n = _train_images(cfg.data.source, cap) + _test_images(cfg.data.source)
    if transductive(cfg.data):  # every target image is both the pool and the evaluation: cached once
        n += _folder_images(cfg.data.target) or _test_images(cfg.data.target)
    else:
        n += _test_images(cfg.data.target)
        if method.uses_target_data or cfg.data.target_labels != "none":
            n += _train_images(cfg.data.target, cap)
    size = m.input_size or info.default_size
    # the last stage's output; earlier stages' maps are larger (4x is a bound for the usual halving)
    per = info.feat_dim * max(1, size // 32) ** 2 * 4 * (1 if m.freeze == len(info.stages) else 4)
    ok, _ = plan_cache(n, per, math.inf if passes is None else passes, mem_available_gb)  # the trainer's rule
    return (n, n * per) if ok else None


def estimate_seconds(cfg: RunConfig, decoded: set[str] | frozenset[str] = frozenset()) -> float:
    """Wall time of a run's worker on this machine, process start to end: the measured figures above,
    scaled by how fast finished runs of this backbone and method really were here (`speed`).
    `decoded`: domains an earlier run queued with this one will have cached by the time it starts."""
    return raw_estimate(cfg, decoded) * speed.factor(cfg.model.backbone, cfg.method.name)


def cost_parts(cfg: RunConfig, decoded: set[str] | frozenset[str] = frozenset()) -> tuple[float, float]:
    """(seconds that do not depend on the number of steps, seconds a step) on this machine: `estimate_seconds`
    in its two parts, for a caller that sizes the steps itself (the advisor's probes)."""
    fixed, step_s = _estimate(cfg, decoded)
    f = speed.factor(cfg.model.backbone, cfg.method.name)
    return fixed * f, step_s * f


def raw_estimate(cfg: RunConfig, decoded: set[str] | frozenset[str] = frozenset()) -> float:
    """The estimate from the figures above alone (what `speed` compares a finished run's wall with)."""
    fixed, step_s = _estimate(cfg, decoded)
    return fixed + cfg.train.epochs * cfg.train.steps_per_epoch * step_s


def _estimate(cfg: RunConfig, decoded: set[str] | frozenset[str] = frozenset(),
              cache: bool | None = None) -> tuple[float, float]:
    """(seconds that do not depend on the number of steps, seconds per step). `cache` True or False
    assumes the frozen-prefix cache on (where it fits) or off, whatever the number of steps."""
    info = backbone_info(cfg.model.backbone)
    name = info.name
    size = cfg.model.input_size or info.default_size
    scale = (size / info.default_size) ** 2
    n_stages = max(len(info.stages), 1)
    frozen = cfg.model.freeze / n_stages
    trainable = 1.0 - frozen
    fwd = 1.0 / EVAL_IPS.get(name, 30.0) * scale
    full = 1.0 / TRAIN_IPS.get(name, 10.0) * scale
    method = get_method(cfg.method.name)
    if method.adapts_frozen_batchnorm:  # its adaptation phase back-propagates through every stage
        adapting = 1.0 - float(cfg.method.params.get("source_phase", method.params["source_phase"].default))
        trainable += (1.0 - trainable) * adapting
    t = cfg.train
    imgs = t.batch_size * method.domains_per_step()
    dev = _device_factor(cfg)
    pretrained = info.has_pretrained and cfg.model.pretrained is not False
    n_eval = _eval_images(cfg)
    if cache is False:
        cache = None
    else:
        cache = _cache_plan(cfg, method, None if cache else _passes(cfg, method))
    if cache is not None:
        # the frozen stages run once per image at set-up; steps and evaluation start from their output
        prefix_s = cache[0] / PREFIX_IPS.get(name, EVAL_IPS.get(name, 30.0)) * scale * frozen / dev
        per_img = full * trainable + CACHED_IMG_S * scale
        eval_img = fwd * trainable + CACHED_IMG_S * scale / 3
    else:
        prefix_s = 0.0
        per_img = fwd + (full - fwd) * trainable  # frozen stages cost a forward pass, trainable ones fwd + bwd
        eval_img = fwd
        if pretrained and method.domains_per_step() == 2:
            per_img *= PRETRAINED_TWO_DOMAIN_FACTOR
    if not pretrained and _colour(cfg):
        per_img *= COLOUR_FACTOR
    extra = STEP_EXTRA_S.get(cfg.method.name, 0.001 if method.domains_per_step() == 2 else 0.0)
    if "hidden" in method.params:  # a discriminator's cost grows with its hidden x hidden layer (DANN at
        # 1024 units with BatchNorm on PACS: 14.4 ms a step against 9.6 for its 64 images)
        hidden = cfg.method.params.get("hidden", method.params["hidden"].default)
        extra *= (hidden / method.params["hidden"].default) ** 2
    step_s = imgs * per_img + extra
    epoch_s = EPOCH_FIXED_S + EMBED_S.get(t.embedding, 0.0) * min(1.0, t.embed_points / 500) ** 1.5
    startup = STARTUP_S.get(name, STARTUP_PRETRAINED_S if pretrained else 3.5)
    decode = sum(_decode_seconds(n) for n in {cfg.data.source, cfg.data.target} - set(decoded))
    return startup + decode + prefix_s + t.epochs * epoch_s + n_eval * eval_img / dev, step_s / dev


def _takes_bottleneck(method, cfg: RunConfig) -> bool:
    """Whether the method accepts a bottleneck (feature extraction fits its head on the backbone's own features)."""
    try:
        method.check(cfg.replace(model={"bottleneck": 256}))
    except ConfigError:
        return False
    return True


def plan_to_budget(cfg: RunConfig, given: set[str], budget_s: float = DEFAULT_BUDGET_S) -> tuple[RunConfig, list[str]]:
    """Complete the settings not in `given` (names like "model.freeze", "train.steps_per_epoch") so that
    the run fits `budget_s` on this machine. Returns the config and what was decided, in words."""
    method = get_method(cfg.method.name)
    notes: list[str] = []
    info = backbone_info(cfg.model.backbone)
    if info.has_pretrained and cfg.model.pretrained is not False:
        cfg = _plan_pretrained(cfg, given, budget_s, method, notes)
    if "train.steps_per_epoch" not in given:
        cfg = _fit_steps(cfg, budget_s, method, notes)
    return cfg, notes


def _plan_pretrained(cfg: RunConfig, given: set[str], budget_s: float, method, notes: list[str]) -> RunConfig:
    """A pretrained backbone's plan: what stays frozen, a bottleneck, the input size, no jitter when the
    frozen features can be computed once, the batch, epochs, learning rate and steps that its few
    trainable layers need, and an adversarial method's wider discriminator."""
    info = backbone_info(cfg.model.backbone)
    model: dict[str, Any] = {}
    train: dict[str, Any] = {}
    gpu = _device_factor(cfg) > 1
    n = len(info.stages)
    bottleneck = cfg.model.bottleneck
    takes = _takes_bottleneck(method, cfg)  # feature extraction freezes everything and takes none
    if "model.bottleneck" not in given and takes:
        bottleneck = model["bottleneck"] = 256
    if "model.freeze" not in given:
        # With a bottleneck every stage stays frozen: on the PACS folders (350 images a domain) a
        # trainable stage over-fits the source, and a frozen network's features are computed once
        # (photo -> sketch, 4 seeds: source only 37 %, DANN 45 % through the bottleneck in ~40 s;
        # bench/results/presets.jsonl, folder rows).
        model["freeze"] = n if bottleneck or not takes else max(0, n - 1)
        frozen = "all" if model["freeze"] == n else f"the first {model['freeze']}"
        notes.append(f"pretrained backbone: {frozen} of {n} stages stay frozen")
    if bottleneck and "model.bottleneck" not in given:
        notes.append(f"a trainable {bottleneck}-feature bottleneck after it")
    freeze = model.get("freeze", cfg.model.freeze)
    if "train.augment" not in given and freeze == n and not method.needs_pixels:
        # no jitter, so that the frozen network's output is fixed and computed once (the bottleneck's
        # dropout regularises instead; the PACS folder runs are measured so)
        train["augment"] = False
    if "model.input_size" not in given and not gpu:
        # the native size when the frozen features can be cached at it (every step would pay it otherwise)
        # and computing them takes at most half of the budget
        native = cfg.replace(model={**model, "input_size": info.default_size}, train=train)
        full = (freeze == n and _cache_plan(native, method) is not None
                and _estimate(native, cache=True)[0] <= 0.5 * (budget_s * 0.9 - COMMAND_S))
        model["input_size"] = info.default_size if full else 128
        if not full:
            notes.append(f"input size 128 px (on a CPU; {info.default_size} px costs 3x the time)")
    if _cache_plan(cfg.replace(model=model, train=train), method) is not None:
        notes.append("frozen features computed once per image (no augmentation)")
    if "train.batch_size" not in given:
        train["batch_size"] = 32 if mem_available_gb() >= 4 else 16
    if "train.epochs" not in given:
        train["epochs"] = 4
    if "train.lr" not in given:
        train["lr"] = 1e-3 if freeze == n else 3e-4
        if freeze < n:
            notes.append("learning rate 3e-4 (pretrained weights move little)")
    if "train.steps_per_epoch" not in given and freeze == n:
        # a frozen network's features are fixed: a small source is learnt in ~100 passes, and more
        # over-fits it (photo -> sketch, 4 seeds: source only 37 % after 876 steps, 31 % after 2,000;
        # bench/results/folder_recipe.json)
        batch = train.get("batch_size", cfg.train.batch_size)
        n_src = _train_images(cfg.data.source, cfg.data.max_per_domain)
        steps = max(50, math.ceil(SOURCE_PASSES * n_src / batch / train.get("epochs", cfg.train.epochs)))
        if steps < cfg.train.steps_per_epoch:
            train["steps_per_epoch"] = steps
            notes.append(f"{steps} steps an epoch: about {SOURCE_PASSES} passes over the source's {n_src} "
                         f"images (more would over-fit them)")
    disc = {"hidden": 1024, "batch_norm": True}
    if (method.family == "adversarial" and set(disc) <= set(method.params) and "method.params" not in given
            and not set(disc) & set(cfg.method.params)):
        # ImageNet features need a wider discriminator than LeNet's, with BatchNorm (TLlib's): DANN through
        # the bottleneck, photo -> sketch, 4 seeds: LeNet's (500 units, no BatchNorm) 35 %, no better than
        # source only's 37 %; this one 45 % (bench/results/folder_recipe.json)
        cfg = cfg.replace(method={"name": cfg.method.name, "params": {**cfg.method.params, **disc}})
        notes.append("a discriminator of 1024 hidden units with BatchNorm (ImageNet features)")
    return cfg.replace(model=model, train=train) if (model or train) else cfg


def _fit_steps(cfg: RunConfig, budget_s: float, method, notes: list[str]) -> RunConfig:
    """Fewer steps per epoch when the run would not fit the budget (with the frozen features cached
    when that many steps make the cache pay, as the run decides); says when even that is over. Plans are
    made from the reference figures alone (`raw_estimate`), never from this host's speed: the same command
    trains the same steps on every machine, so its numbers can be compared."""
    est = raw_estimate(cfg)
    # plan to 90 % of the budget less the command's own start: a margin for a machine busier than
    # the one the constants were measured on, so that the run ends within what the user was shown
    target_s = budget_s * 0.9 - COMMAND_S
    if est > target_s:
        def steps_for(cache: bool) -> int:
            fixed, per_step = _estimate(cfg, cache=cache)
            return int(max(1, (target_s - fixed) / max(per_step, 1e-9) / cfg.train.epochs))

        # with the frozen features cached when that many steps make the cache pay (as the run decides)
        steps = steps_for(True)
        shorter = cfg.replace(train={"steps_per_epoch": steps})
        if _cache_plan(shorter, method, _passes(shorter, method)) is None:
            steps = steps_for(False)
        cfg = cfg.replace(train={"steps_per_epoch": steps})
        notes.append(f"{cfg.train.epochs} epochs x {steps} steps to fit the time budget of "
                     f"{budget_s / 60:.1f} min")
        over = raw_estimate(cfg)
        if over > target_s:
            notes.append(f"even so about {over:.0f} s: set-up and evaluation alone are over the budget "
                         f"(raise it, or use fewer images per domain)")
    return cfg


def given_fields(cfg_dict: dict[str, Any]) -> set[str]:
    """Every field named in a config dict, as "section.field" (a config file sets them all)."""
    return {f"{sec}.{k}" for sec, vals in cfg_dict.items() if isinstance(vals, dict) for k in vals}

