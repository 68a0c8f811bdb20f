"""Step 6, predict: decoding uploads, importing models, cached predictors."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tl_core.policy import access
from tl_core import runs
from tl_core.policy.access import Session
from tl_core.models.checkpoint import MAX_MODEL_BYTES, Predictor, read_model_meta
from tl_core.data.domains import get_domain
from tl_core.data.domains.folder import load_image
from tl_core.base.errors import ConfigError, TLError
from tl_core.base.limits import megabytes
from tl_core.base.lru import ByteLRU
from tl_core.policy.uploads import delete_model, model_folder, store_model
from tl_core.app.run_views import visible_run

# what the pages may call (tl_core.app.api exports exactly these)
__all__ = ["decode_upload", "unpack_model_zip", "import_model", "my_models", "delete_my_model", "predict",
           "target_samples"]


def decode_upload(data: bytes, name: str = "image") -> np.ndarray:
    """An uploaded image file -> (3, H, W) uint8; a clear error when it is not a readable image."""
    from PIL import UnidentifiedImageError

    try:
        return load_image(io.BytesIO(data), size=224)  # type: ignore[arg-type]
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        why = str(e) if isinstance(e, ValueError) and "pixels" in str(e) else type(e).__name__
        raise ConfigError(f"{name} is not an image this app can read ({why}). "
                          f"Upload a PNG, JPEG, BMP, GIF, TIFF or WebP file of at most 40 megapixels.") from None


def unpack_model_zip(data: bytes) -> tuple[bytes, bytes]:
    """(model.safetensors, model.json) from a checkpoint zip downloaded from the Compare page. Reads
    only those two members, by name and within size limits; a zip made by torch.save is refused."""
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
    dest = store_model(weights, meta, name, session)
    _predictor_cache().pop(str(dest))
    p = _load_predictor(dest)
    label = dest.name.rsplit("--", 1)[0]
    return {"model": f"upload:{dest.name}", "label": f"{label} (uploaded {p.meta['backbone']})", "classes": p.classes}


def my_models(session: Session) -> dict[str, str]:
    """This session's uploaded model files (reference -> label), read from its upload area: they are
    listed after a reload too, so each one can be used or deleted."""
    out = {}
    folder = access.session_dir(session) / "models"
    for d in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            backbone = str(read_model_meta(d).get("backbone", "?"))[:40]
        except TLError:
            continue
        out[f"upload:{d.name}"] = f"{d.name.rsplit('--', 1)[0]} (uploaded {backbone})"
    return out


def delete_my_model(session: Session, model: str) -> None:
    """Delete one of this session's uploaded model files (only its owner can name it) and free its quota."""
    folder = model_folder(session, str(model))
    _predictor_cache().pop(str(folder))
    delete_model(session, str(model))


def predict(session: Session, model: str, images: list[np.ndarray], top_k: int = 3) -> list[dict[str, Any]]:
    """Top-k classes for (3, H, W) uint8 images with a visible run's reported checkpoint (or one of this
    session's uploaded models, `upload:NAME`), and each image as the model saw it."""
    import torch

    pred = _predictor(session, model)
    out = []
    for img in images:
        x = torch.from_numpy(np.ascontiguousarray(img))[None]
        r = pred.predict(x, top_k=top_k)
        out.append({"classes": r["classes"][0], "probs": r["probs"][0], "seen": r["seen"][0]})
    return out


def _model_bytes(p: Any) -> int:
    return sum(t.numel() * t.element_size() for t in p.model.state_dict().values())


# loaded models, up to TL_MODEL_CACHE_MB (default 512 MB): ResNet-50 is 100 MB, LeNet 0.2 MB
_PREDICTORS = None


def _predictor_cache():
    global _PREDICTORS
    if _PREDICTORS is None:
        _PREDICTORS = ByteLRU(megabytes("TL_MODEL_CACHE_MB") or 0, _model_bytes)
    return _PREDICTORS


def _load_predictor(folder: Path):
    cache = _predictor_cache()
    key = str(folder)  # a resumed run or a re-uploaded model has a new folder: never a stale model
    p = cache.get(key)
    if p is None:
        p = Predictor(folder)
        cache.put(key, p)
    return p


def _predictor(session: Session, model: str):
    if model.startswith("upload:"):
        folder = model_folder(session, model)
    else:
        visible_run(session, model)
        folder = runs.checkpoint_path(model, "best")
        if folder is None:
            raise TLError(f"Run {model} has no checkpoint yet: one is saved at the end of each epoch.")
    return _load_predictor(folder)


def target_samples(session: Session, run_id: str, n: int = 8, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Random images of a visible run's target test split, with their true class names."""
    import torch

    r = visible_run(session, run_id)
    d = get_domain(r["config"]["data"]["target"]).load()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(d.x_test), generator=g)[:n]
    return [d.x_test[i].numpy() for i in idx], [d.classes[int(d.y_test[i])] for i in idx]
