"""What the app's pages call: plain Python and numpy in and out, no streamlit, torch only lazily.

Pages stay thin: widgets -> one of these functions -> render. Every call that touches runs,
uploads or models carries the caller's `Session` (see `access`): a session sees its own runs and
the published ones, and changes only its own.
"""
from __future__ import annotations

import io
import os
import re
import shlex
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from . import access
from .access import Session
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


# -- the server and its sessions -------------------------------------------------------------

def start_server(port: object = None) -> tuple[bool, str]:
    """Once per page run: make this process the web server of its TL_HOME (lock, scheduler thread,
    short store timeouts). (False, why) when another server already uses the same TL_HOME."""
    from . import runs
    from .paths import tl_home

    runs.set_interactive(True)
    ok, holder = runs.claim_server({"port": port})
    if not ok:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(holder["started"])) if holder.get("started") else "?"
        return False, (f"Another TransferLab server (process {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                       f"port {holder.get('port', '?')}, started {when}) already uses the run store in {tl_home()}. "
                       f"Two servers on one store would each take the other's runs for dead. Stop the other "
                       f"server, or start this one with its own store: TL_HOME=/another/folder streamlit run app.py")
    runs.start_scheduler()
    return True, ""


def open_session(token: str | None, local: bool) -> tuple[Session, str, bool]:
    """The session of a browser from its cookie's token: (session, token, whether the token is new)."""
    return access.session_from_token(token, local=local)


def store_busy() -> str:
    """"" when the run store answers; else the message to show (checked before a page runs, so that a
    store locked by another program gives a notice, not a hang or a traceback)."""
    from . import runs
    from .errors import StoreBusy

    try:
        runs.store().read("SELECT 1 FROM runs LIMIT 1")
        return ""
    except StoreBusy as e:
        return str(e)


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


def queue_summary(session: Session) -> dict[str, Any]:
    """How busy the server is (counts of everyone's runs) and this session's own runs in the queue."""
    from . import runs

    rows = runs.store().read("SELECT id, status, owner, method, source, target, created FROM runs "
                             "WHERE status IN ('queued','starting','running') ORDER BY created")
    mine = [dict(r) for r in rows if r["owner"] == session.owner]
    return {"running": sum(r["status"] != "queued" for r in rows), "queued": sum(r["status"] == "queued" for r in rows),
            "mine": mine, "limit": runs.max_concurrent()}


def domain_label(name: str) -> str:
    """A domain as people read it: `upload:<owner>/photos` -> `photos (upload)`, a folder by its name."""
    base, plus, rest = name.partition("+")
    if base.startswith("upload:"):
        base = base.rsplit("/", 1)[-1] + " (upload)"
    elif base.startswith("folder:"):
        base = Path(base[len("folder:"):]).name + " (folder)"
    return base + (plus + rest if plus else "")


def run_label(r: dict[str, Any]) -> str:
    return f"{r['id']} · {r['method']} · {domain_label(r['source'])}→{domain_label(r['target'])} · {r['status']}"


# -- data --------------------------------------------------------------------------------

def domain_choices(session: Session | None = None) -> list[dict[str, Any]]:
    """The built-in domains, then the teacher's datasets (ingested from the server's command line) and
    this session's own uploads. No session sees another's uploads."""
    from .domains import get_domain, list_domains

    out = [get_domain(n).info() for n in list_domains() if not n.startswith(("folder:", "upload:"))]
    owners = [access.CLI] + ([session.owner] if session is not None and not session.is_cli else [])
    for owner in owners:
        d = access.uploads_root() / owner / "domains"
        for p in sorted(d.iterdir()) if d.is_dir() else []:
            if p.is_dir() and access.NAME.match(p.name):
                info = get_domain(f"upload:{owner}/{p.name}").info()
                info["label"] = f"{p.name} ({'upload' if owner != access.CLI else 'shared by the teacher'})"
                out.append(info)
    return out


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


def input_channels(source: str, target: str) -> int:
    """Colour (3) if either domain is in colour, else grey (1); 1 when a domain cannot be resolved."""
    from .domains import get_domain

    try:
        return max(get_domain(source).channels, get_domain(target).channels)
    except TLError:
        return 1


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


def model_summary(backbone: str, freeze: int, input_size: int | None = None, in_channels: int = 1,
                  bottleneck: int = 0) -> dict[str, Any]:
    """Parameters per stage and trainable/total for a freeze depth (built with random weights: same counts)."""
    from .backbones import build_backbone

    bb = build_backbone(backbone, pretrained=False, input_size=input_size, in_channels=in_channels, freeze=freeze,
                        bottleneck=bottleneck)
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


def allowed(session: Session, cfg: RunConfig) -> str:
    """"" when this session may launch the (validated) config; else why not, in words (a quota, a
    dataset or run that is not its own)."""
    try:
        access.check_config(session, cfg)
    except TLError as e:
        return str(e)
    return ""


def estimate_seconds(cfg: RunConfig) -> float:
    from .planner import estimate_seconds as f

    return f(cfg)


def plan_for_budget(cfg: dict[str, Any], budget_s: float) -> tuple[dict[str, Any], list[str]]:
    """The draft config with its schedule (and, for a pretrained backbone, its frozen stages, input size
    and batch) planned to fit `budget_s` on this machine; the domains, backbone and method stay."""
    from .planner import fill

    c = RunConfig.from_dict(cfg)
    keep = {"data.source", "data.target", "data.target_labels", "data.max_per_domain", "model.backbone",
            "model.pretrained", "train.seed", "train.seeds", "train.embedding", "train.selection", "train.device"}
    base = c.replace(train={"steps_per_epoch": RunConfig().train.steps_per_epoch, "epochs": RunConfig().train.epochs})
    planned, notes = fill(base, keep, budget_s=max(10.0, float(budget_s)))
    return planned.to_dict(), notes or ["the default plan already fits"]


def describe_plan(cfg: RunConfig) -> str:
    """A short plain-words summary of what the run will do."""
    from .methods import get_method

    m = get_method(cfg.method.name)
    d, t, mo = cfg.data, cfg.train, cfg.model
    regime = {"none": "no target labels", "all": "all target labels"}.get(str(d.target_labels),
                                                                          f"{d.target_labels} labelled target images per class")
    freeze = "all stages train" if mo.freeze == 0 else f"the first {mo.freeze} stage(s) stay frozen"
    if mo.bottleneck:
        freeze += f", then a trainable {mo.bottleneck}-feature bottleneck"
    weights = "pretrained weights" if mo.pretrained is not False and mo.backbone != "lenet" else "random weights"
    return (f"Train **{mo.backbone}** ({weights}; {freeze}) on **{md(domain_label(d.source))}** with its labels, and "
            f"adapt it to **{md(domain_label(d.target))}** ({regime}) with **{m.label}**: {t.epochs} epochs × {t.steps_per_epoch} steps of "
            f"{t.batch_size} images per domain, {t.optimizer} at learning rate {t.lr:g}, seed {t.seed}. "
            f"After each epoch: source and target test accuracy, the domain gap and a {t.embedding.upper()} map "
            f"of the features. The run reports {_selection_words(t.selection)} (chosen without "
            f"target labels)"
            + (f"; it is repeated for seeds {', '.join(map(str, t.seeds))} and reported as mean ± std."
               if t.seeds else "."))


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md(text: object) -> str:
    """A user's name escaped for markdown: shown as written, never as formatting, links or HTML."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def _selection_words(selection: str) -> str:
    from .config import SELECTIONS

    return "its last epoch" if selection == "last" else f"the epoch with the {SELECTIONS[selection]}"


def cli_command(cfg: dict[str, Any] | RunConfig) -> str:
    """The equivalent command line for a config."""
    c = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
    from .config import cli_fields

    args = ["python", "-m", "tl_core", "train", "--method", c.method.name]
    always = {"source", "target", "backbone"}
    for section, name, flag, meta in cli_fields():
        value, default = getattr(getattr(c, section), name), meta["default"]
        if value is None or (value == default and name not in always):
            continue
        if meta["kind"] is bool:
            args.append(flag if value else "--no-" + flag[2:])
        elif meta["kind"] is tuple:
            args += [flag, ",".join(map(str, value))]
        else:
            args += [flag, str(value)]  # str of a float round-trips exactly
    args += ["--budget", "0"]  # exactly this config: nothing left to plan
    me = c.method
    for k, v in sorted(me.params.items()):
        args += ["--param", f"{k}={v}"]
    return " ".join(shlex.quote(a) for a in args)


# -- runs, as one session sees them -------------------------------------------------------

def _visible(session: Session, run_id: str) -> dict[str, Any]:
    """A run's record (with progress) if this session may see it; one message for unknown and hidden."""
    from . import runs

    try:
        r = runs.get_run(run_id)
    except TLError:
        raise access.not_visible(run_id) from None
    if not access.can_see(session, r):
        raise access.not_visible(run_id)
    r["mine"] = access.can_change(session, r)
    return r


def _own(session: Session, run_id: str) -> dict[str, Any]:
    r = _visible(session, run_id)
    if not r["mine"]:
        raise ConfigError(f"Run {run_id} belongs to another session: you can watch it, not change it.")
    return r


def get_run(session: Session, run_id: str) -> dict[str, Any]:
    return _visible(session, run_id)


def list_runs(session: Session, **filters: Any) -> list[dict[str, Any]]:
    """This session's runs and the published ones (the teacher's command-line runs included), newest first."""
    from . import runs

    rows = runs.list_runs(visible_to=session.owner, **filters) if not session.is_cli else runs.list_runs(**filters)
    for r in rows:
        r["mine"] = access.can_change(session, r)
    return rows


def cancel_run(session: Session, run_id: str) -> None:
    from . import runs

    _own(session, run_id)
    runs.cancel(run_id)


def delete_run(session: Session, run_id: str) -> None:
    from . import runs

    _own(session, run_id)
    runs.delete(run_id)


def publish_run(session: Session, run_id: str, on: bool = True) -> None:
    """Share a run with the class (read-only for everyone else), or stop sharing it."""
    from . import runs

    _own(session, run_id)
    runs.store().update(run_id, published=int(bool(on)))


def read_metrics(session: Session, run_id: str, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
    from . import runs

    _visible(session, run_id)
    return runs.read_metrics(run_id, cursor)


def embedding_epochs(session: Session, run_id: str) -> list[int]:
    from . import runs

    _visible(session, run_id)
    return runs.embedding_epochs(run_id)


def read_embedding(session: Session, run_id: str, epoch: int | None = None) -> dict[str, Any] | None:
    from . import runs

    _visible(session, run_id)
    return runs.read_embedding(run_id, epoch)


def all_embeddings(session: Session, run_id: str) -> list[dict[str, Any]]:
    from . import runs

    _visible(session, run_id)
    return [runs.read_embedding(run_id, e) for e in runs.embedding_epochs(run_id)]


def finished_runs(session: Session) -> dict[str, str]:
    """Finished runs this session can see as {id: label}, newest first: the choices for a method
    parameter that names a run (a teacher model, a source model)."""
    return {r["id"]: run_label(r) for r in list_runs(session, status="finished", limit=200)}


def submit(cfg: dict[str, Any], session: Session) -> str:
    """Validate and queue a run for this session (one per seed when it asks for several); returns the
    first id. Everything it points at must be the session's to use; quotas hold."""
    from . import runs

    c, why = validate(cfg)
    if c is None:
        raise ConfigError(why)
    access.check_config(session, c)
    ids = []
    for one in c.per_seed():
        ids.append(runs.submit(one, owner=session.owner, published=False if not session.is_cli else None,
                               limits=access.queue_limits(session), wall_limit_s=access.wall_limit(session)))
    return ids[0]


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
        out.append({"id": r["id"], "status": r["status"], "method": r["method"], "source": domain_label(r["source"]),
                    "target": domain_label(r["target"]), "backbone": r["backbone"],
                    "freeze": r["config"]["model"]["freeze"], "labels": r["target_labels"], "seed": r["seed"],
                    "epochs": f"{r['epoch']}/{r['epochs']}", "source_acc": r["source_acc"],
                    "target_acc": r["target_acc"], "gain": gain, "verdict": verdict, "best_epoch": r["best_epoch"],
                    "wall_s": r["wall_s"], "trainable_params": r["trainable_params"], "device": r["device"],
                    "shared": "yours, shared" if r.get("mine") and r.get("published") else
                              "yours" if r.get("mine") else "shared with you",
                    "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))})
    return out


def checkpoint_bytes(session: Session, run_id: str) -> tuple[bytes, str] | None:
    """A zip of the run's best checkpoint (safetensors + JSON) and config, for download."""
    from . import runs

    _visible(session, run_id)
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
    from PIL import UnidentifiedImageError

    from .domains.folder import load_image

    try:
        return load_image(io.BytesIO(data), size=224)  # type: ignore[arg-type]
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        why = str(e) if isinstance(e, ValueError) and "pixels" in str(e) else type(e).__name__
        raise ConfigError(f"{name} is not an image this app can read ({why}). "
                          f"Upload a PNG, JPEG, BMP, GIF, TIFF or WebP file of at most 40 megapixels.") from None


def unpack_model_zip(data: bytes) -> tuple[bytes, bytes]:
    """(model.safetensors, model.json) from a checkpoint zip downloaded from the Compare page. Reads
    only those two members, by name and within size limits; a zip made by torch.save is refused."""
    from .checkpoint import MAX_MODEL_BYTES

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError):
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
        if m.flag_bits & 0x1:
            raise ConfigError("The zip is encrypted; upload the checkpoint zip as the Compare page downloads it.")
        try:
            with z.open(m) as f:
                blob = f.read(MAX_MODEL_BYTES + 1)  # headers can lie: never read past the cap
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError, ValueError) as e:
            raise ConfigError(f"{n} in the zip cannot be read ({type(e).__name__}): the zip is damaged or uses an "
                              f"unsupported compression.") from None
        if len(blob) > MAX_MODEL_BYTES:
            raise ConfigError(f"{n} in the zip unpacks to more than 1 GB; it is refused.")
        out.append(blob)
    return out[0], out[1]


def import_model(weights: bytes, meta: bytes, name: str, session: Session) -> dict[str, Any]:
    """A model uploaded in the browser (safetensors + model.json), checked and kept in this session's
    upload area; returns its reference for `predict`."""
    from .uploads import store_model

    dest = store_model(weights, meta, name, session)
    _predictor_cache().pop(str(dest))
    p = _load_predictor(dest)
    label = dest.name.rsplit("--", 1)[0]
    return {"model": f"upload:{dest.name}", "label": f"{label} (uploaded {p.meta['backbone']})", "classes": p.classes}


def predict(session: Session, model: str, images: list[np.ndarray], top_k: int = 3) -> list[dict[str, Any]]:
    """Top-k classes for (3, H, W) uint8 images with a visible run's reported checkpoint (or one of this
    session's uploaded models, `upload:NAME`), and each image as the model saw it."""
    import torch

    pred = _predictor(session, model)
    out = []
    for img in images:
        x = torch.from_numpy(np.ascontiguousarray(img))[None]
        r = pred.predict(x, top_k=top_k)
        out.append({"classes": r["classes"][0], "probs": r["probs"][0], "seen": r["seen"][0].numpy()})
    return out


def _model_bytes(p: Any) -> int:
    return sum(t.numel() * t.element_size() for t in p.model.state_dict().values())


# loaded models, up to TL_MODEL_CACHE_MB (default 512 MB): ResNet-50 is 100 MB, LeNet 0.2 MB
_PREDICTORS = None


def _predictor_cache():
    global _PREDICTORS
    if _PREDICTORS is None:
        from .lru import ByteLRU, cap_from_env

        _PREDICTORS = ByteLRU(cap_from_env("TL_MODEL_CACHE_MB", 512), _model_bytes)
    return _PREDICTORS


def _load_predictor(folder: Path):
    from .checkpoint import Predictor

    cache = _predictor_cache()
    key = str(folder)  # a resumed run or a re-uploaded model has a new folder: never a stale model
    p = cache.get(key)
    if p is None:
        p = Predictor(folder)
        cache.put(key, p)
    return p


def _predictor(session: Session, model: str):
    from . import runs
    from .uploads import model_folder

    if model.startswith("upload:"):
        folder = model_folder(session, model)
    else:
        _visible(session, model)
        folder = runs.checkpoint_path(model, "best")
        if folder is None:
            raise TLError(f"Run {model} has no checkpoint yet: one is saved at the end of each epoch.")
    return _load_predictor(folder)


def target_samples(session: Session, run_id: str, n: int = 8, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Random images of a visible run's target test split, with their true class names."""
    import torch

    from .domains import get_domain

    r = _visible(session, run_id)
    d = get_domain(r["config"]["data"]["target"]).load()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(d.x_test), generator=g)[:n]
    return [d.x_test[i].numpy() for i in idx], [d.classes[int(d.y_test[i])] for i in idx]


# -- uploads and folders ------------------------------------------------------------------

def ingest_zip(data: bytes, name: str, session: Session) -> dict[str, Any]:
    """Unpack an uploaded zip of class folders into this session's area (see `uploads.ingest_zip`)."""
    from .uploads import ingest_zip as ingest

    return ingest(data, name, session)


def add_folder(path: str, session: Session) -> dict[str, Any]:
    """A folder on the server, inside the roots its owner allowed (see `access.resolve_folder`)."""
    from .uploads import add_folder as add

    return add(path, session)


def session_folders(session: Session) -> dict[str, str]:
    """The server folders this session added: {domain: label}."""
    from .uploads import folders

    return {n: domain_label(n) for n in folders(session)}


def folder_roots(session: Session) -> list[str]:
    return [str(p) for p in access.folder_roots(session)]


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
    p["mosaic"] = np.concatenate(rows[:MAX_PREVIEW_ROWS], 0)
    p.pop("grid")
    return p


MAX_PREVIEW_ROWS = 20  # a domain with hundreds of classes previews its first 20: the image stays bounded


def shift_preview(base: str, kind: str, severity: int, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The first n test images of a domain before and after a shift (N, H, W, 3)."""
    from .domains import get_domain
    from .domains.shift import apply_shift

    d = get_domain(base).load()
    x = d.x_test[:n]
    return _hwc(x), _hwc(apply_shift(x, kind, severity, seed=0))


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
        out.append({"source": domain_label(first["source"]), "target": domain_label(first["target"]),
                    "backbone": first["backbone"],
                    "method": first["method"], "seeds": sorted(m["seed"] for m in members), "n": len(members),
                    "target_acc_mean": statistics.mean(acc), "target_acc_std": statistics.stdev(acc),
                    "source_acc_mean": statistics.mean(src), "source_acc_std": statistics.stdev(src),
                    "runs": [m["id"] for m in members]})
    return sorted(out, key=lambda g: (g["source"], g["target"], g["backbone"], g["method"]))
