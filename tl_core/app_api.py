"""What the app's pages call: plain Python and numpy in and out, no streamlit, torch only lazily.

Pages stay thin: widgets -> one of these functions -> render.
"""
from __future__ import annotations

import io
import os
import shlex
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .config import RunConfig
from .errors import ConfigError, TLError

# The first visit works offline: rendered digits -> scikit-learn's digits, LeNet, DANN.
# On this pair DANN at trade-off 1 over-aligns (target 0.40 vs 0.47 for source only, seed 0);
# at 0.3 it beats source only on seeds 0 and 1 (0.486 vs 0.473, 0.460 vs 0.427), ~65 s a run.
APP_DEFAULT = RunConfig().replace(
    data={"source": "syndigits", "target": "uci_digits"},
    method={"name": "dann", "params": {"trade_off": 0.3}},
    train={"epochs": 8, "steps_per_epoch": 300},
)


def default_config() -> dict[str, Any]:
    return APP_DEFAULT.to_dict()


def device_summary() -> str:
    """GPU name(s) or the CPU's cores, without importing torch in the web server."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=5).stdout.strip()
            if out:
                return "GPU: " + ", ".join(out.splitlines())
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return f"CPU: {cores} cores (no GPU found)"


def queue_summary() -> dict[str, list[dict[str, Any]]]:
    from . import runs

    rows = runs.list_runs(limit=200)
    active = [r for r in rows if r["status"] in ("starting", "running")]
    queued = sorted((r for r in rows if r["status"] == "queued"), key=lambda r: r["created"])
    return {"running": active, "queued": queued, "limit": runs.max_concurrent()}


def run_label(r: dict[str, Any]) -> str:
    return f"{r['id']} · {r['method']} · {r['source']}→{r['target']} · {r['status']}"


# -- data --------------------------------------------------------------------------------

def domain_choices() -> list[dict[str, Any]]:
    """The built-in domains. Folders and uploads are registered process-wide when added, so they
    are left out here: each session lists its own (no session sees another's uploads)."""
    from .domains import get_domain, list_domains

    return [get_domain(n).info() for n in list_domains() if not n.startswith("folder:")]


def shift_kinds() -> dict[str, str]:
    from .domains import SHIFTS

    return {k: v[1] for k, v in SHIFTS.items()}


def _hwc(x) -> np.ndarray:
    a = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    a = a.transpose(0, 2, 3, 1)
    return np.repeat(a, 3, axis=3) if a.shape[3] == 1 else a


def domain_preview(name: str, per_class: int = 4, seed: int = 0) -> dict[str, Any]:
    """Sample images per class (N, H, W, 3 uint8), class names and counts of a domain."""
    import torch

    from .domains import get_domain

    d = get_domain(name).load()
    g = torch.Generator().manual_seed(seed)
    grid = []
    for c in range(len(d.classes)):
        idx = torch.nonzero(d.y_train == c).flatten()
        pick = idx[torch.randperm(len(idx), generator=g)[:per_class]]
        grid.append(_hwc(d.x_train[pick]))
    return {"classes": d.classes, "grid": grid, "train_counts": d.class_counts("train"),
            "test_counts": d.class_counts("test"), "size": d.size, "channels": d.channels,
            "n_train": len(d.x_train), "n_test": len(d.x_test)}


def label_space(source: str, target: str) -> tuple[bool, str]:
    from .domains import check_label_spaces, get_domain

    try:
        check_label_spaces(get_domain(source), get_domain(target))
    except TLError as e:
        return False, str(e)
    return True, f"Both domains have the same {len(get_domain(source).classes)} classes."


# -- model -------------------------------------------------------------------------------

def backbone_choices() -> list[dict[str, Any]]:
    from .backbones import backbone_info, list_backbones

    out = []
    for n in list_backbones():
        b = backbone_info(n)
        ok, msg = b.weights_status()
        out.append({"name": n, "label": b.label, "description": b.description, "stages": list(b.stages),
                    "has_pretrained": b.has_pretrained, "weights_available": ok, "weights_note": msg,
                    "default_size": b.default_size, "min_size": b.min_size})
    return out


def model_summary(backbone: str, freeze: int, input_size: int | None = None, in_channels: int = 1) -> dict[str, Any]:
    """Parameters per stage and trainable/total for a freeze depth (built with random weights: same counts)."""
    from .backbones import build_backbone

    bb = build_backbone(backbone, pretrained=False, input_size=input_size, in_channels=in_channels, freeze=freeze)
    trainable, total = bb.param_counts()
    return {"stages": bb.stage_param_counts(), "trainable": trainable, "total": total,
            "input": bb.input_spec.to_dict()}


# -- strategy ----------------------------------------------------------------------------

FAMILY_ORDER = ("baseline", "parameter transfer", "feature transfer", "statistics", "adversarial",
                "self-training", "instance transfer", "distillation")


def method_cards() -> list[dict[str, Any]]:
    """Every registered method, baseline first, then grouped by family (the guide's reading order)."""
    from .methods import get_method, list_methods

    cards = [get_method(n).describe() for n in list_methods()]
    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    return sorted(cards, key=lambda c: (rank.get(c["family"], len(rank)), c["name"]))


def validate(cfg: dict[str, Any]) -> tuple[RunConfig | None, str]:
    """(validated config, "") or (None, the reason in words)."""
    try:
        c = RunConfig.from_dict(cfg).validate()
    except TLError as e:
        return None, str(e)
    from .backbones import backbone_info

    info = backbone_info(c.model.backbone)
    if info.has_pretrained and c.model.pretrained is not False:
        ok, msg = info.weights_status()
        if not ok:
            return None, msg + " Switch off pretrained weights on the Model page to train from random weights."
    return c, ""


def estimate_seconds(cfg: RunConfig) -> float:
    from .trainer import estimate_seconds as f

    return f(cfg)


def describe_plan(cfg: RunConfig) -> str:
    """A short plain-words summary of what the run will do."""
    from .methods import get_method

    m = get_method(cfg.method.name)
    d, t, mo = cfg.data, cfg.train, cfg.model
    regime = {"none": "no target labels", "all": "all target labels"}.get(str(d.target_labels),
                                                                          f"{d.target_labels} labelled target images per class")
    freeze = "all stages train" if mo.freeze == 0 else f"the first {mo.freeze} stage(s) stay frozen"
    weights = "pretrained weights" if mo.pretrained is not False and mo.backbone != "lenet" else "random weights"
    return (f"Train **{mo.backbone}** ({weights}; {freeze}) on **{d.source}** with its labels, and adapt it to "
            f"**{d.target}** ({regime}) with **{m.label}**: {t.epochs} epochs × {t.steps_per_epoch} steps of "
            f"{t.batch_size} images per domain, {t.optimizer} at learning rate {t.lr:g}, seed {t.seed}. "
            f"After each epoch: source and target test accuracy, the domain gap and a {t.embedding.upper()} map "
            f"of the features. The run reports {_selection_words(t.selection)} (chosen without "
            f"target labels)"
            + (f"; it is repeated for seeds {', '.join(map(str, t.seeds))} and reported as mean ± std."
               if t.seeds else "."))


def _selection_words(selection: str) -> str:
    from .config import SELECTIONS

    return "its last epoch" if selection == "last" else f"the epoch with the {SELECTIONS[selection]}"


def cli_command(cfg: dict[str, Any] | RunConfig) -> str:
    """The equivalent command line for a config."""
    c = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
    d, m, t, me = c.data, c.model, c.train, c.method
    args = ["python", "-m", "tl_core", "train", "--source", d.source, "--target", d.target, "--backbone", m.backbone,
            "--method", me.name, "--freeze", str(m.freeze), "--epochs", str(t.epochs), "--steps",
            str(t.steps_per_epoch), "--batch-size", str(t.batch_size), "--lr", f"{t.lr:g}", "--optimizer",
            t.optimizer, "--seed", str(t.seed), "--target-labels", str(d.target_labels), "--embedding", t.embedding]
    if d.max_per_domain:
        args += ["--max-per-domain", str(d.max_per_domain)]
    if m.input_size:
        args += ["--input-size", str(m.input_size)]
    if m.pretrained is False:
        args.append("--no-pretrained")
    if not t.augment:
        args.append("--no-augment")
    if t.selection != "last":
        args += ["--selection", t.selection]
    if t.seeds:
        args += ["--seeds", ",".join(map(str, t.seeds))]
    for k, v in sorted(me.params.items()):
        args += ["--param", f"{k}={v}"]
    return " ".join(shlex.quote(a) for a in args)


# -- compare -----------------------------------------------------------------------------

def compare_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs as table rows, each with its gain over the source-only run on the same source, target and
    backbone (the newest finished one); a negative gain is negative transfer."""
    baselines: dict[tuple, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["created"]):
        if r["method"] == "source_only" and r["status"] == "finished" and r["target_acc"] is not None:
            baselines[(r["source"], r["target"], r["backbone"])] = r
    out = []
    for r in rows:
        base = baselines.get((r["source"], r["target"], r["backbone"]))
        gain = None
        if base is not None and r["target_acc"] is not None and r["method"] != "source_only":
            gain = r["target_acc"] - base["target_acc"]
        verdict = ("" if gain is None else "negative transfer: worse than source only" if gain < -0.005
                   else "no clear gain" if gain < 0.005 else "gain over source only")
        out.append({"id": r["id"], "status": r["status"], "method": r["method"], "source": r["source"],
                    "target": r["target"], "backbone": r["backbone"], "freeze": r["config"]["model"]["freeze"],
                    "labels": r["target_labels"], "seed": r["seed"], "epochs": f"{r['epoch']}/{r['epochs']}",
                    "source_acc": r["source_acc"], "target_acc": r["target_acc"], "gain": gain, "verdict": verdict,
                    "best_epoch": r["best_epoch"], "wall_s": r["wall_s"], "trainable_params": r["trainable_params"],
                    "device": r["device"], "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))})
    return out


def checkpoint_bytes(run_id: str) -> tuple[bytes, str] | None:
    """A zip of the run's best checkpoint (safetensors + JSON) and config, for download."""
    from . import runs

    folder = runs.checkpoint_path(run_id, "best")
    if folder is None:
        return None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in ("model.safetensors", "model.json"):
            z.write(folder / f, f)
        cfg = runs.store().run_dir(run_id) / "config.json"
        if cfg.exists():
            z.write(cfg, "config.json")
    return buf.getvalue(), f"transferlab-{run_id}.zip"


# -- predict -----------------------------------------------------------------------------

def decode_upload(data: bytes, name: str = "image") -> np.ndarray:
    """An uploaded image file -> (3, H, W) uint8; a clear error when it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    from .domains.folder import load_image

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > 40_000_000:
                raise ConfigError(f"{name} claims {w}x{h} pixels; images up to 40 megapixels are accepted.")
        return load_image(io.BytesIO(data), size=224)  # type: ignore[arg-type]
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ConfigError(f"{name} is not an image this app can read ({type(e).__name__}). "
                          f"Upload a PNG, JPEG, BMP, GIF, TIFF or WebP file.") from None


def unpack_model_zip(data: bytes) -> tuple[bytes, bytes]:
    """(model.safetensors, model.json) from a checkpoint zip downloaded from the Compare page. Reads
    only those two members, by name and within size limits; a zip made by torch.save is refused."""
    from .checkpoint import MAX_MODEL_BYTES

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ConfigError("That file is not a zip archive: upload the checkpoint zip from the Compare page, or "
                          "model.safetensors with its model.json.") from None
    names = {Path(m.filename).name: m for m in z.infolist() if not m.is_dir()}
    if any(n.endswith(".pkl") for n in names) or "data.pkl" in names:
        raise ConfigError("This archive is a PyTorch pickle (torch.save). Pickles can run code when loaded, so "
                          "they are never opened here. Save the weights with safetensors instead.")
    if "model.safetensors" not in names or "model.json" not in names:
        raise ConfigError("The zip must hold model.safetensors and model.json (the checkpoint zip the Compare "
                          "page downloads).")
    out = []
    for n in ("model.safetensors", "model.json"):
        m = names[n]
        if m.file_size > MAX_MODEL_BYTES:
            raise ConfigError(f"{n} in the zip is {m.file_size / 1e9:.1f} GB; at most 1 GB is accepted.")
        with z.open(m) as f:
            blob = f.read(MAX_MODEL_BYTES + 1)  # headers can lie: never read past the cap
        if len(blob) > MAX_MODEL_BYTES:
            raise ConfigError(f"{n} in the zip unpacks to more than 1 GB; it is refused.")
        out.append(blob)
    return out[0], out[1]


def import_model(weights: bytes, meta: bytes, name: str, session: str) -> dict[str, Any]:
    """A model uploaded in the browser (safetensors + model.json), checked and kept in this session's
    upload area; returns its reference for `predict`."""
    import re

    from .checkpoint import Predictor, import_model as check_and_store

    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:40] or "model"
    dest = check_and_store(weights, meta, uploads_dir(session) / "models" / clean)
    p = Predictor(dest)
    return {"model": f"upload:{dest}", "label": f"{clean} (uploaded {p.meta['backbone']})", "classes": p.classes}


def predict(model: str, images: list[np.ndarray], top_k: int = 3) -> list[dict[str, Any]]:
    """Top-k classes for (3, H, W) uint8 images with a run's reported checkpoint (or an uploaded model,
    `upload:PATH`), and each image as the model saw it."""
    import torch

    pred = _predictor(model)
    out = []
    for img in images:
        x = torch.from_numpy(np.ascontiguousarray(img))[None]
        r = pred.predict(x, top_k=top_k)
        out.append({"classes": r["classes"][0], "probs": r["probs"][0], "seen": r["seen"][0].numpy()})
    return out


_PREDICTORS: dict[str, Any] = {}


def _predictor(model: str):
    from . import runs
    from .checkpoint import Predictor
    from .paths import tl_home

    if model.startswith("upload:"):
        folder = Path(model[len("upload:"):]).resolve()
        if not str(folder).startswith(str((tl_home() / "uploads").resolve()) + os.sep):
            raise ConfigError("Uploaded models are read from the app's upload area only.")
    else:
        folder = runs.checkpoint_path(model, "best")
        if folder is None:
            raise TLError(f"Run {model} has no checkpoint yet: one is saved at the end of each epoch.")
    key = str(folder)  # a resumed run reports a new folder, so it is never served from a stale cache
    if key not in _PREDICTORS:
        _PREDICTORS[key] = Predictor(folder)
    return _PREDICTORS[key]


def target_samples(run_id: str, n: int = 8, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Random images of a run's target test split, with their true class names."""
    import torch

    from . import runs
    from .domains import get_domain

    r = runs.get_run(run_id)
    d = get_domain(r["config"]["data"]["target"]).load()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(d.x_test), generator=g)[:n]
    return [d.x_test[i].numpy() for i in idx], [d.classes[int(d.y_test[i])] for i in idx]


# -- uploads -----------------------------------------------------------------------------

MAX_MEMBERS = 50_000
MAX_UNCOMPRESSED = 2 * 1024**3
MAX_RATIO = 100


def uploads_dir(session: str) -> Path:
    from .paths import tl_home

    safe = "".join(ch for ch in session if ch.isalnum() or ch in "-_")[:64] or "anon"
    p = tl_home() / "uploads" / safe
    p.mkdir(parents=True, exist_ok=True)
    return p


def ingest_zip(data: bytes, name: str, session: str) -> dict[str, Any]:
    """Unpack an uploaded zip of class folders into this session's upload area and register it
    as a domain. Refuses path traversal, links, and archive bombs before writing anything."""
    import re
    import shutil
    import stat

    from .domains import register_folder
    from .domains.folder import _is_junk, check_layout

    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:40]
    if not clean:
        raise ConfigError("Give the dataset a name made of letters, digits, '-' or '_'.")
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ConfigError("That file is not a zip archive. Zip a folder that holds one sub-folder per class.") from None
    members = z.infolist()
    if len(members) > MAX_MEMBERS:
        raise ConfigError(f"The archive has {len(members):,} entries; at most {MAX_MEMBERS:,} are accepted.")
    total = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    if total > MAX_UNCOMPRESSED:
        raise ConfigError(f"The archive unpacks to {total / 1e9:.1f} GB; at most 2 GB are accepted.")
    if total / packed > MAX_RATIO:
        raise ConfigError(f"The archive is compressed {total / packed:.0f}:1, which looks like a zip bomb; "
                          f"at most {MAX_RATIO}:1 is accepted.")
    for m in members:
        n = m.filename
        mode = m.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ConfigError(f"The archive contains a link ({n!r}); links are refused. Zip the files themselves.")
        parts = n.replace("\\", "/").split("/")
        if n.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", n) or ".." in parts:
            raise ConfigError(f"The archive entry {n!r} points outside its folder; such archives are refused.")
    dest = uploads_dir(session) / clean
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    written, skipped = 0, []
    for m in members:
        parts = [p for p in m.filename.replace("\\", "/").split("/") if p]
        if m.is_dir() or not parts:
            continue
        if any(_is_junk(p) for p in parts):
            skipped.append(m.filename)
            continue
        target = tmp.joinpath(*parts)
        if not str(target.resolve()).startswith(str(tmp.resolve()) + os.sep):
            raise ConfigError(f"The archive entry {m.filename!r} points outside its folder.")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(m) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > MAX_UNCOMPRESSED:  # headers can lie: count what is really written
                        raise ConfigError("The archive unpacks to more than 2 GB; it is refused.")
                    out.write(chunk)
        except ConfigError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except (OSError, zipfile.BadZipFile, EOFError) as e:  # a file and a folder of one name, a broken member
            shutil.rmtree(tmp, ignore_errors=True)
            raise ConfigError(f"The archive entry {m.filename!r} cannot be unpacked ({type(e).__name__}): "
                              f"is the archive damaged, or does it hold a file and a folder of the same name?") from None
    root = tmp
    subdirs = [p for p in tmp.iterdir() if p.is_dir() and not _is_junk(p.name)]
    files = [p for p in tmp.iterdir() if p.is_file()]
    if len(subdirs) == 1 and not files:  # one wrapper folder: unwrap it
        root = subdirs[0]
    try:
        check_layout(root)  # refused layouts leave nothing behind
    except ConfigError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConfigError(str(e).replace(f"{root.name}/", f"{clean}/").replace(f"{root.name} ", f"{clean} ")
                          + f" Zip that folder as {clean}.zip and upload it again.") from None
    shutil.rmtree(dest, ignore_errors=True)
    shutil.move(str(root), str(dest))
    shutil.rmtree(tmp, ignore_errors=True)
    domain_name = f"folder:{dest}"  # a name every process (the workers too) can resolve
    dom = register_folder(dest, name=domain_name, label=clean)
    return {"domain": domain_name, "classes": dom.classes, "skipped": skipped, "path": str(dest),
            "warnings": dom.warnings}


def preview_mosaic(name: str, per_class: int = 6, cell: int = 40) -> dict[str, Any]:
    """One image with a row of samples per class (cell x cell each), plus the domain's facts."""
    from PIL import Image

    p = domain_preview(name, per_class=per_class)
    rows = []
    for imgs in p["grid"]:
        tiles = [np.asarray(Image.fromarray(im).resize((cell, cell), Image.NEAREST if im.shape[0] < cell
                                                       else Image.BILINEAR)) for im in imgs]
        tiles += [np.full((cell, cell, 3), 255, np.uint8)] * (per_class - len(tiles))
        rows.append(np.concatenate([np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=255) for t in tiles], 1))
    p["mosaic"] = np.concatenate(rows, 0)
    p.pop("grid")
    return p


def shift_preview(base: str, kind: str, severity: int, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The first n test images of a domain before and after a shift (N, H, W, 3)."""
    from .domains import get_domain
    from .domains.shift import apply_shift

    d = get_domain(base).load()
    x = d.x_test[:n]
    return _hwc(x), _hwc(apply_shift(x, kind, severity, seed=0))


def add_folder(path: str) -> dict[str, Any]:
    """Register an image folder on the server as a domain (named `folder:PATH`, resolvable by workers)."""
    from .domains import register_folder

    p = Path(path).expanduser()
    d = register_folder(p, name=f"folder:{p}", label=p.name)
    return {"domain": d.name, "label": d.label, "classes": d.classes, "warnings": d.warnings}


def submit(cfg: dict[str, Any], session: str = "") -> str:
    """Validate and queue a run from the app (one per seed when it asks for several); returns the first id."""
    from . import runs

    c, why = validate(cfg)
    if c is None:
        raise ConfigError(why)
    return [runs.submit(one, owner=session) for one in c.per_seed()][0]


def finished_runs() -> dict[str, str]:
    """Finished runs as {id: label}, newest first: the choices for a method parameter that names a run."""
    from . import runs

    return {r["id"]: run_label(r) for r in runs.list_runs(status="finished", limit=200)}


def selection_choices() -> dict[str, str]:
    from .config import SELECTIONS

    return dict(SELECTIONS)


def seed_groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished runs whose configs differ only in the seed, as mean ± std of their accuracies
    (groups of two or more)."""
    import statistics

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] != "finished" or r.get("target_acc") is None:
            continue
        c = RunConfig.from_dict(r["config"]).replace(train={"seed": 0, "seeds": ()})
        groups.setdefault(c.config_id(), []).append(r)
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        acc = [m["target_acc"] for m in members]
        src = [m["source_acc"] for m in members]
        first = members[0]
        out.append({"source": first["source"], "target": first["target"], "backbone": first["backbone"],
                    "method": first["method"], "seeds": sorted(m["seed"] for m in members), "n": len(members),
                    "target_acc_mean": statistics.mean(acc), "target_acc_std": statistics.stdev(acc),
                    "source_acc_mean": statistics.mean(src), "source_acc_std": statistics.stdev(src),
                    "runs": [m["id"] for m in members]})
    return sorted(out, key=lambda g: (g["source"], g["target"], g["backbone"], g["method"]))


def all_embeddings(run_id: str) -> list[dict[str, Any]]:
    from . import runs

    return [runs.read_embedding(run_id, e) for e in runs.embedding_epochs(run_id)]
