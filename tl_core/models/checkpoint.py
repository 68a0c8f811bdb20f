"""Checkpoints without pickle: safetensors for tensors, JSON beside them for everything else.

Layout of a run folder:
    last.json  best.json        pointers (atomically renamed) to complete checkpoint folders
    ckpt-0005/                  model.safetensors, model.json, state.safetensors, state.json
A pointer is written only after its folder is complete and fsynced, so a crash at any
point leaves every checkpoint either loadable or absent.
"""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from tl_core.base import events as ev
from tl_core.models.backbones import backbone_info
from tl_core.base.errors import ConfigError, RunAborted, TLError
from tl_core.base.inputs import InputSpec, adapt
from tl_core.data.thumbs import seen
from tl_core.config import HEADS
from tl_core.models.model import build_classifier
from tl_core.base.paths import atomic_write_bytes, atomic_write_text

FORMAT = 1


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> None:
    from safetensors.torch import save

    clean = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    atomic_write_bytes(path, save(clean, metadata=meta))


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Checkpointer:
    """Saves `last` every epoch and `best` when the selection score improves; restores `last`."""

    def __init__(self, run_dir: Path, keep: int = 2):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._swept = False

    def _sweep(self) -> None:
        """Remove what a crashed writer left (only the writer does this: a reader must never delete a
        copy that is being written)."""
        for junk in list(self.dir.glob(".tmp-ckpt-*")) + list(self.dir.glob(".del-*")):
            shutil.rmtree(junk, ignore_errors=True)
        self._swept = True

    def _remove(self, folder: Path) -> None:
        """Delete a checkpoint folder so that a crash midway cannot leave half of it under its name."""
        if not folder.exists():
            return
        doomed = self.dir / f".del-{folder.name}"
        shutil.rmtree(doomed, ignore_errors=True)
        os.replace(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    # -- pointers --------------------------------------------------------------------
    def _pointer(self, which: str) -> Path | None:
        p = self.dir / f"{which}.json"
        try:
            d = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        folder = self.dir / d["dir"]
        return folder if (folder / "model.safetensors").exists() else None

    def has_last(self) -> bool:
        return self._pointer("last") is not None

    def path(self, which: str = "best") -> Path | None:
        return self._pointer(which) or (self._pointer("last") if which == "best" else None)

    # -- save / restore --------------------------------------------------------------
    def save(self, state, meta: dict[str, Any], epoch: int, best: bool) -> list[ev.Event]:
        """Write `state.state_dict()` (its `model` beside `meta` as model.safetensors + model.json, the
        rest as state.safetensors + state.json) to a complete folder under a temporary name, rename it
        into place, then move the pointers. A crash or a full disk at any point leaves every checkpoint
        whole or absent."""

        def write(tmp: Path) -> None:
            rest = dict(state.state_dict())
            _save_tensors(tmp / "model.safetensors", rest.pop("model"))
            atomic_write_text(tmp / "model.json", json.dumps({**meta, "epoch": epoch}, indent=1))
            tensors, plain = split_tensors(rest)
            _save_tensors(tmp / "state.safetensors", tensors)
            atomic_write_text(tmp / "state.json", json.dumps(plain))

        return self._install(epoch, best, write)

    FILES = ("model.safetensors", "model.json", "state.safetensors", "state.json")

    def install_files(self, epoch: int, files: dict[str, bytes], best: bool) -> list[ev.Event]:
        """Install a checkpoint made elsewhere (a remote worker's `files`), as atomically as `save`."""
        unknown = set(files) - set(self.FILES)
        if unknown or "model.safetensors" not in files:
            raise TLError(f"a checkpoint has the files {sorted(self.FILES)}; got {sorted(files)}")

        def write(tmp: Path) -> None:
            for name, data in files.items():
                atomic_write_bytes(tmp / name, data)

        return self._install(epoch, best, write)

    def files(self, which: str = "last") -> dict[str, bytes] | None:
        """The files of the `last` (or `best`) checkpoint, to send to a worker on another machine."""
        folder = self.path(which)
        if folder is None:
            return None
        return {n: (folder / n).read_bytes() for n in self.FILES if (folder / n).exists()}

    def _install(self, epoch: int, best: bool, write) -> list[ev.Event]:
        folder = self.dir / f"ckpt-{epoch:04d}"
        tmp = self.dir / f".tmp-ckpt-{epoch:04d}"
        try:
            if not self._swept:
                self._sweep()
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            write(tmp)
            _fsync_dir(tmp)
            self._remove(folder)
            os.replace(tmp, folder)
            _fsync_dir(self.dir)
            pointer = json.dumps({"dir": folder.name, "epoch": epoch})
            atomic_write_text(self.dir / "last.json", pointer)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)  # frees what the partial copy took
            prev = self._pointer("last")
            kept = f"the checkpoint of epoch {int(prev.name[5:])} is intact" if prev else "no earlier checkpoint exists"
            why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise RunAborted(f"could not save the checkpoint of epoch {epoch} ({why}); {kept}. "
                            f"Free some space in {self.dir.parent}, then resume the run.") from None
        out: list[ev.Event] = [ev.CheckpointSaved(epoch=epoch, path=str(folder), best=False)]
        if best:
            atomic_write_text(self.dir / "best.json", pointer)
            out.append(ev.CheckpointSaved(epoch=epoch, path=str(folder), best=True))
        self._prune()
        return out

    def _prune(self) -> None:
        """Keep the folders that a pointer names, plus the newest few."""
        named = {p.name for p in (self._pointer("last"), self._pointer("best")) if p is not None}
        folders = sorted(self.dir.glob("ckpt-*"))
        for f in folders[:-self.keep]:
            if f.name not in named:
                self._remove(f)

    def restore(self, state) -> int:
        """Load the last checkpoint into `state` (`load_state_dict`); returns the epochs it had finished."""
        folder = self._pointer("last")
        if folder is None:
            return 0
        d = merge_tensors(json.loads((folder / "state.json").read_text()), _load_tensors(folder / "state.safetensors"))
        d["model"] = _load_tensors(folder / "model.safetensors")
        state.load_state_dict(d)
        return state.epoch


SEP = "/"  # joins the path of a tensor in the nested state (parameter names themselves contain dots)


def split_tensors(d: dict[str, Any], prefix: str = "") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A nested dict -> (its tensors under flat path keys, the same dict without them)."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if torch.is_tensor(v):
            tensors[key] = v
        elif isinstance(v, dict):
            sub_t, sub_p = split_tensors(v, key + SEP)
            tensors.update(sub_t)
            plain[k] = sub_p
        else:
            plain[k] = v
    return tensors, plain


def merge_tensors(plain: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The inverse of `split_tensors`: put each tensor back at its path."""
    for key, v in tensors.items():
        *path, leaf = key.split(SEP)
        node = plain
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = v
    return plain


def read_model_meta(folder: Path) -> dict[str, Any]:
    """A checkpoint folder's model.json (what rebuilds the model: backbone, classes, input spec, head);
    TLError when it cannot be read as one."""
    try:
        meta = json.loads((Path(folder) / "model.json").read_text())
    except (OSError, ValueError) as e:
        raise TLError(f"The checkpoint in {folder} cannot be read ({e}).") from None
    if not isinstance(meta, dict):
        raise TLError(f"The checkpoint in {folder} cannot be read (its model.json is not an object).")
    return meta


class Predictor:
    """A trained classifier loaded from a checkpoint folder, ready to classify images."""

    def __init__(self, folder: Path, device: str = "cpu"):
        self.meta = read_model_meta(folder)
        self.classes: list[str] = self.meta["classes"]
        self.spec = InputSpec.from_dict(self.meta["input_spec"])
        self.model = build_classifier(self.meta["backbone"], self.meta["num_classes"],
                                      in_channels=self.meta["in_channels"], input_size=self.spec.size,
                                      bottleneck=int(self.meta.get("bottleneck", 0)),
                                      head=str(self.meta.get("head", "linear")))
        self.model.load_state_dict(_load_tensors(Path(folder) / "model.safetensors"))
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.epoch = self.meta.get("epoch")

    @torch.no_grad()
    def predict(self, images: torch.Tensor, top_k: int = 3) -> dict[str, Any]:
        """uint8 images (N, C, H, W) -> top-k classes and probabilities, and the input as the model saw it (the
        thumbnail every confusion cell and map point shows: `thumbs.seen`, uint8 (N, h, w, C))."""

        x = adapt(images, self.spec, self.device)
        probs = self.model(x).softmax(1).cpu()
        p, i = probs.topk(min(top_k, probs.shape[1]), dim=1)
        return {"classes": [[self.classes[j] for j in row] for row in i.tolist()], "probs": p.tolist(),
                "seen": seen(images, self.spec)}


# -- models uploaded by users: safetensors + JSON only --------------------------------------

MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_MODEL_BYTES = 1024 * 1024 * 1024
MAX_CLASSES = 1000
MAX_META_BYTES = 1024 * 1024
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def check_safetensors(data: bytes) -> dict[str, Any]:
    """Validate a safetensors file from its bytes without trusting it: the header length, the JSON
    header, each tensor's dtype, shape and byte range. Returns the header; raises ConfigError."""
    pickled = (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or data[:4] == b"PK\x03\x04"
    if data[8:9] != b"{" and pickled:  # a safetensors header is JSON from byte 8; a pickle is not
        raise ConfigError("This file is a Python pickle (e.g. from torch.save). Pickles can run code when loaded, "
                          "so they are never opened here. Save the weights with safetensors instead: "
                          "safetensors.torch.save_file(model.state_dict(), 'model.safetensors').")
    if len(data) < 8:
        raise ConfigError("The weights file is truncated: it is shorter than a safetensors header.")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER_BYTES:
        raise ConfigError(f"The weights file's header claims {n:,} bytes (at most {MAX_HEADER_BYTES:,} are accepted): "
                          f"it is damaged or not a safetensors file.")
    if 8 + n > len(data):
        raise ConfigError(f"The weights file is truncated: its header needs {8 + n:,} bytes, the file has {len(data):,}.")
    try:
        header = json.loads(data[8:8 + n])
    except (ValueError, UnicodeDecodeError):
        raise ConfigError("The weights file's header is not valid JSON: it is not a safetensors file.") from None
    if not isinstance(header, dict):
        raise ConfigError("The weights file's header is not a safetensors header.")
    body = len(data) - 8 - n
    for key, t in header.items():
        if key == "__metadata__":
            continue
        try:
            size = _DTYPE_BYTES[t["dtype"]]
            shape = [int(s) for s in t["shape"]]
            start, end = (int(v) for v in t["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"The weights file describes tensor {str(key)[:80]!r} incompletely or with an unknown "
                              f"type.") from None
        numel = math.prod(shape)  # Python's integers: a shape whose product overflows int64 is just too big
        if len(shape) > 8 or min(shape, default=0) < 0 or not 0 <= start <= end <= body or end - start != numel * size:
            raise ConfigError(f"The weights file is truncated or damaged: tensor {str(key)[:80]!r} ({t['dtype']}, "
                              f"shape {str(shape)[:120]}) "
                              f"does not fit in the {body:,} bytes of data.")
    return header


def import_model(weights: bytes, meta_text: bytes | str, dest: Path) -> Path:
    """Check an uploaded model (safetensors weights + model.json as this app writes it) against the
    backbone it names, then store it as a checkpoint folder in `dest`. Nothing is written on refusal."""

    if len(weights) > MAX_MODEL_BYTES:
        raise ConfigError(f"The weights file is {len(weights) / 1e9:.1f} GB; at most 1 GB is accepted.")
    if len(meta_text) > MAX_META_BYTES:
        raise ConfigError(f"model.json is {len(meta_text):,} bytes; the metadata this app writes is far smaller "
                          f"(at most {MAX_META_BYTES:,} are accepted).")
    try:
        meta = json.loads(meta_text)
        classes = [str(c) for c in meta["classes"]]
        spec = InputSpec.from_dict(meta["input_spec"])
        info = backbone_info(str(meta["backbone"]))
        num, ch = int(meta["num_classes"]), int(meta["in_channels"])
        bottleneck = int(meta.get("bottleneck", 0))
        head = str(meta.get("head", "linear"))
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - any malformed metadata gets one message
        raise ConfigError("The model.json must be the metadata this app writes beside a checkpoint: backbone, "
                          "classes, num_classes, in_channels and input_spec.") from None
    if num != len(classes) or num < 2:
        raise ConfigError(f"model.json lists {len(classes)} classes but num_classes is {num}; at least 2 are needed.")
    # bounded before anything is built: these numbers decide how much memory the model and its inputs take
    if num > MAX_CLASSES or any(len(c) > 200 for c in classes):
        raise ConfigError(f"model.json lists {num:,} classes (at most {MAX_CLASSES:,}, names up to 200 characters).")
    if ch not in (1, 3) or spec.channels not in (1, 3) or len(spec.mean) != spec.channels or \
            len(spec.std) != spec.channels or not all(isinstance(v, (int, float)) and 0 < v < 100 for v in spec.std):
        raise ConfigError("model.json's input_spec must have 1 or 3 channels with a mean and a positive std per channel.")
    if not info.min_size <= spec.size <= 512:
        raise ConfigError(f"model.json's input size {spec.size} is outside {info.min_size}..512 pixels for "
                          f"{info.label}.")
    if not (bottleneck == 0 or 16 <= bottleneck <= 4096):
        raise ConfigError(f"model.json's bottleneck {bottleneck} is outside 16..4096 features (0: none).")
    if head not in HEADS:
        raise ConfigError(f"model.json's head {head[:40]!r} is not one of {', '.join(HEADS)}.")
    check_safetensors(weights)
    from safetensors.torch import load as load_bytes

    state = load_bytes(weights)
    model = build_classifier(info.name, num, in_channels=ch, input_size=spec.size, bottleneck=bottleneck, head=head)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        raise ConfigError(f"The weights do not fit a {info.label} with {num} classes: missing "
                          f"{', '.join(missing[:5]) or 'none'}{' ...' if len(missing) > 5 else ''}; unexpected "
                          f"{', '.join(extra[:5]) or 'none'}{' ...' if len(extra) > 5 else ''}.")
    bad = [f"{k} is {got[k]}, expected {want[k]}" for k in want if got[k] != want[k]]
    if bad:
        raise ConfigError(f"The weights do not fit a {info.label} with {num} classes: " + "; ".join(bad[:5]) + ".")
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    atomic_write_bytes(tmp / "model.safetensors", weights)
    atomic_write_text(tmp / "model.json", json.dumps({**meta, "classes": classes, "imported": True}, indent=1))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest
