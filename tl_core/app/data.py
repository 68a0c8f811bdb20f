"""Step 1, data: the domains a session may use, previews, label spaces, uploads and folders."""
from __future__ import annotations

from typing import Any

import numpy as np

from tl_core.policy import access
from tl_core.policy.access import Session
from tl_core.data.domains import check_label_spaces, get_domain, list_domains, FolderDomain, SHIFTS
from tl_core.data.domains.names import parse
from tl_core.data.domains.shift import apply_shift
from tl_core.base.errors import TLError
from tl_core.policy.uploads import add_folder as add, delete_upload as rm, folders, ingest_zip as ingest, uploads
from tl_core.app.text import domain_label

# what the pages may call (tl_core.app.api exports exactly these)
__all__ = ["domain_choices", "shift_kinds", "domain_preview", "input_channels", "label_space", "ingest_zip",
           "add_folder", "session_folders", "folder_roots", "preview_mosaic", "MAX_PREVIEW_ROWS", "shift_preview",
           "domain_refusal_text", "my_uploads", "delete_upload", "domain_base"]


def domain_choices(session: Session | None = None) -> list[dict[str, Any]]:
    """The built-in domains, then the teacher's datasets (ingested from the server's command line) and
    this session's own uploads. No session sees another's uploads."""
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
    return {k: v[1] for k, v in SHIFTS.items()}


def _hwc(x) -> np.ndarray:
    a = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    a = a.transpose(0, 2, 3, 1)
    return np.repeat(a, 3, axis=3) if a.shape[3] == 1 else a


def domain_preview(name: str, session: Session, per_class: int = 4, seed: int = 0) -> dict[str, Any]:
    """Sample images per class (N, H, W, 3 uint8), class names and counts of a domain this session may
    use. An image folder decodes only the images shown (see `FolderDomain.preview`)."""
    import torch

    access.gate_domain(session, name)
    dom = get_domain(name)
    if isinstance(dom, FolderDomain):
        return dom.preview(per_class=per_class, seed=seed)
    d = dom.load()
    g = torch.Generator().manual_seed(seed)
    grid = []
    for c in range(len(d.classes)):
        idx = torch.nonzero(d.y_train == c).flatten()
        pick = idx[torch.randperm(len(idx), generator=g)[:per_class]]
        grid.append(_hwc(d.x_train[pick]))
    return {"classes": d.classes, "grid": grid, "train_counts": d.class_counts("train"),
            "test_counts": d.class_counts("test"), "size": d.size, "channels": d.channels,
            "n_train": len(d.x_train), "n_test": len(d.x_test)}


def input_channels(source: str, target: str, session: Session) -> int:
    """Colour (3) if either domain is in colour, else grey (1); 1 when a domain cannot be resolved."""
    try:
        access.gate_domain(session, source)
        access.gate_domain(session, target)
        return max(get_domain(source).channels, get_domain(target).channels)
    except TLError:
        return 1


def label_space(source: str, target: str, session: Session) -> tuple[bool, str]:
    try:
        access.gate_domain(session, source)
        access.gate_domain(session, target)
        check_label_spaces(get_domain(source), get_domain(target))
    except TLError as e:
        return False, str(e)
    n = len(get_domain(source).classes)
    return True, f"{domain_label(source)} and {domain_label(target)} share the same {n} classes: a run can start."


def ingest_zip(data: bytes, name: str, session: Session) -> dict[str, Any]:
    """Unpack an uploaded zip of class folders into this session's area (see `uploads.ingest_zip`)."""
    return ingest(data, name, session)


def add_folder(path: str, session: Session) -> dict[str, Any]:
    """A folder on the server, inside the roots its owner allowed (see `access.resolve_folder`)."""
    return add(path, session)


def session_folders(session: Session) -> dict[str, str]:
    """The server folders this session added: {domain: label}."""
    return {n: domain_label(n) for n in folders(session)}


def folder_roots(session: Session) -> list[str]:
    return [str(p) for p in access.folder_roots(session)]


def preview_mosaic(name: str, session: Session, per_class: int = 6, cell: int = 40) -> dict[str, Any]:
    """One image with a row of samples per class (cell x cell each), plus the domain's facts."""
    from PIL import Image

    p = domain_preview(name, session, per_class=per_class)
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


def shift_preview(base: str, kind: str, severity: int, session: Session,
                  n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The first n test images of a domain before and after a shift (N, H, W, 3); an image folder
    decodes only those n."""
    import torch

    access.gate_domain(session, base)
    dom = get_domain(base)
    if isinstance(dom, FolderDomain):
        x = torch.from_numpy(dom.sample_images(n))
    else:
        x = dom.load().x_test[:n]
    return _hwc(x), _hwc(apply_shift(x, kind, severity, seed=0))


def domain_refusal_text(session: Session) -> str:
    """What every refused domain name reads as for this session (see `access.gate_domain`)."""
    return str(access.domain_refusal(session))


def domain_base(name: str) -> str:
    """A domain name without its shifts (`mnist+rotate:3` -> `mnist`); the name itself if it cannot be parsed."""
    try:
        return parse(name).base
    except TLError:
        return name


def my_uploads(session: Session) -> list[dict[str, Any]]:
    """This session's uploaded datasets with the space each takes (files, and decoded pixels)."""
    return uploads(session)


def delete_upload(session: Session, name: str) -> None:
    """Delete one of this session's uploaded datasets, freeing its quota (runs keep their results)."""
    rm(session, name)
