"""What users bring in: zips of class folders, folders on the server, model files.

Each session's files live in its own area (`TL_HOME/uploads/<owner>/`, see `access.session_dir`).
An archive is checked before anything is written (entries, sizes, ratio, links, paths,
encryption, compression method, image count, the session's and the server's disk quotas), then
unpacked into a private temporary folder that is removed whatever happens; only a complete,
valid dataset is moved into place. Files that are not images are not kept.
"""
from __future__ import annotations

import io
import json
import lzma
import os
import re
import shutil
import stat
import time
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Any

from tl_core.policy import access
from tl_core.policy.access import Session
from tl_core.models.checkpoint import import_model as check_and_store
from tl_core.data.domains.folder import is_junk, open_folder, quoted, FolderDomain, IMAGE_EXTS
from tl_core.base.errors import ConfigError, QuotaExceeded, TLError
from tl_core.base.limits import check_domain_size
from tl_core.base.paths import atomic_write_text, tl_home

MAX_MEMBERS = 50_000
MAX_UNCOMPRESSED = 2 * 1024**3
MAX_RATIO = 100
MAX_ARCHIVE_BYTES = 2 * 1024**3
SUPPORTED = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
             zipfile.ZIP_LZMA: "lzma"}
# what can go wrong while reading a member that passed the checks: a damaged archive, a lying header
UNPACK_ERRORS = (OSError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, ValueError, zlib.error,
                 lzma.LZMAError)


def _open_zip(src: bytes | str | Path) -> zipfile.ZipFile:
    try:
        if isinstance(src, (bytes, bytearray)):
            return zipfile.ZipFile(io.BytesIO(src))
        size = Path(src).stat().st_size
        if size > MAX_ARCHIVE_BYTES:
            raise ConfigError(f"The archive is {size / 1e9:.1f} GB; at most {MAX_ARCHIVE_BYTES / 1e9:.0f} GB are accepted.")
        return zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise ConfigError("That file is not a zip archive (or it is damaged). Zip a folder that holds one "
                          "sub-folder per class.") from None


def _check_members(z: zipfile.ZipFile) -> tuple[list[zipfile.ZipInfo], list[str], int]:
    """Refuse the archive before writing anything; returns (image members to unpack, ignored names,
    declared bytes of those members)."""
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
    keep, ignored = [], []
    seen: set[str] = set()
    for m in members:
        n = m.filename
        norm = n.replace("\\", "/").rstrip("/")
        if norm in seen:
            raise ConfigError(f"The archive holds {quoted(n)} twice; an archive with duplicate entries is refused "
                              f"(which copy would be the image?). Zip the folder again.")
        seen.add(norm)
        if stat.S_ISLNK(m.external_attr >> 16):
            raise ConfigError(f"The archive contains a link ({n!r}); links are refused. Zip the files themselves.")
        parts = n.replace("\\", "/").split("/")
        if n.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", n) or ".." in parts or "\x00" in n:
            raise ConfigError(f"The archive entry {n!r} points outside its folder; such archives are refused.")
        if m.is_dir():
            continue
        if m.flag_bits & 0x1:
            raise ConfigError(f"The archive is encrypted ({n!r} needs a password); upload an archive without a "
                              f"password.")
        if m.compress_type not in SUPPORTED:
            raise ConfigError(f"The archive uses a compression method this app cannot read (method "
                              f"{m.compress_type} for {n!r}); zip it again with the usual 'deflate' method.")
        clean = [p for p in parts if p]
        if any(is_junk(p) for p in clean):
            ignored.append(n)
        elif Path(clean[-1]).suffix.lower() not in IMAGE_EXTS:
            ignored.append(n)  # not an image: not kept
        else:
            keep.append(m)
    if not keep:
        raise ConfigError("The archive holds no images (PNG, JPEG, BMP, GIF, TIFF, WebP). Zip a folder that holds "
                          "one sub-folder of images per class.")
    check_domain_size(len(keep), 0)
    return keep, ignored, sum(m.file_size for m in keep)


def _copy_member(z: zipfile.ZipFile, m: zipfile.ZipInfo, target: Path, budget: list[int]) -> None:
    """Copy one member, counting real bytes against what is left (headers can lie)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with z.open(m) as src, open(target, "wb") as out:
        while chunk := src.read(1 << 20):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise QuotaExceeded("The archive unpacks to more than its header said, beyond the space left for "
                                    "uploads; it is refused.")
            out.write(chunk)


def ingest_zip(src: bytes | str | Path, name: str, session: Session) -> dict[str, Any]:
    """Unpack a zip of class folders into the session's area as the dataset `name` (replacing its own
    dataset of that name); returns its domain name `upload:<owner>/<name>`, classes, ignored entries
    and warnings. On any refusal or failure nothing is left behind, and a dataset of that name that was
    already there stays as it was. Two uploads of one name at once are taken one after the other."""
    clean = access.clean_name(name)
    area = access.session_dir(session)
    _sweep_stale(area / ".tmp")
    with _name_lock(area, clean):
        allowance = access.upload_allowance(session)
        with _open_zip(src) as z:
            keep, ignored, declared = _check_members(z)
            if allowance is not None and declared > allowance:
                lim = access.limits()
                raise access.quota_upload("session", lim.upload_mb, "TL_QUOTA_UPLOAD_MB") if \
                    lim.upload_mb and declared > lim.upload_mb * 2**20 - access.usage_bytes(area) else \
                    access.quota_upload("server", lim.upload_total_mb, "TL_QUOTA_UPLOAD_TOTAL_MB")
            tmp = area / ".tmp" / uuid.uuid4().hex
            tmp.mkdir(parents=True)
            try:
                _unpack(z, keep, tmp, allowance)
                subdirs = [p for p in tmp.iterdir() if p.is_dir()]
                files = [p for p in tmp.iterdir() if p.is_file()]
                root = subdirs[0] if len(subdirs) == 1 and not files else tmp  # one wrapper folder: unwrap it
                try:
                    dom = open_folder(root, name=f"upload:{session.owner}/{clean}", label=clean)
                    check_domain_size(len(keep), len(dom.classes))
                except ConfigError as e:
                    raise ConfigError(f"{e} Zip that folder as {clean}.zip and upload it again.") from None
                plan = dom.plan()
                check_decoded(session, plan["bytes"], replacing=clean)
                dest = area / "domains" / clean
                old = area / ".tmp" / (uuid.uuid4().hex + "-old")
                try:
                    if dest.exists():
                        os.replace(dest, old)  # swap, so a reader never sees half of either version
                    os.replace(root, dest)
                except OSError:
                    if old.exists() and not dest.exists():
                        os.replace(old, dest)  # put the previous version back
                    raise ConfigError("The dataset could not be put in place (the server's disk refused it); "
                                      "nothing was changed. Try again.") from None
                shutil.rmtree(old, ignore_errors=True)
                _record_decoded(session, clean, {"bytes": plan["bytes"], "side": plan["side"],
                                                 "images": plan["n_images"]})
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    domain = f"upload:{session.owner}/{clean}"
    final = FolderDomain(dest, name=domain, label=clean)
    return {"domain": domain, "label": clean, "classes": final.classes, "skipped": ignored, "warnings": dom.warnings}


STALE_TMP_S = 3600  # an unpack folder older than this was left by a crash: removed on the next upload


def _unpack(z: zipfile.ZipFile, keep: list[zipfile.ZipInfo], tmp: Path, allowance: int | None) -> None:
    budget = [min(MAX_UNCOMPRESSED, allowance if allowance is not None else MAX_UNCOMPRESSED)]
    for m in keep:
        parts = [p for p in m.filename.replace("\\", "/").split("/") if p]
        target = tmp.joinpath(*parts)
        if not target.resolve().is_relative_to(tmp.resolve()):
            raise ConfigError(f"The archive entry {quoted(m.filename)} points outside its folder.")
        try:
            _copy_member(z, m, target, budget)
        except TLError:
            raise
        except UNPACK_ERRORS as e:
            raise ConfigError(f"The archive entry {quoted(m.filename)} cannot be unpacked ({type(e).__name__}): "
                              f"is the archive damaged, or does it hold a file and a folder of the same "
                              f"name?") from None


def _sweep_stale(tmp_root: Path) -> None:
    """Unpack folders left by a crashed or killed upload: they would count against the quota forever."""
    now = time.time()
    for p in tmp_root.iterdir() if tmp_root.is_dir() else []:
        try:
            if p.is_dir() and not p.name.endswith(".lock") and now - p.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            continue


def _books(session: Session) -> Path:
    """Where the app keeps its notes on a session's uploads (outside the upload area, which holds
    images only): the decoded bytes of each dataset, and the locks of its names."""
    p = _tl_home() / "state" / "uploads" / access.session_dir(session).name
    p.mkdir(parents=True, exist_ok=True)
    return p


def _tl_home() -> Path:
    return tl_home()


def _record_decoded(session: Session, name: str, facts: dict[str, int]) -> None:
    atomic_write_text(_books(session) / f"{name}.json", json.dumps(facts))


class _name_lock:
    """An exclusive lock on one of a session's dataset names (a file lock, so it holds across the
    server's threads and processes)."""

    def __init__(self, area: Path, name: str):
        self.path = _tl_home() / "state" / "uploads" / area.name / f"{name}.lock"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> "_name_lock":
        import fcntl

        self.f = open(self.path, "a+")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def check_decoded(session: Session, new_bytes: int, replacing: str = "") -> None:
    """A new upload's decoded pixels, with those of the session's other uploads, within TL_QUOTA_DECODED_MB."""
    lim = access.limits()
    if session.is_cli or not lim.decoded_mb:
        return
    used = sum(u["decoded_bytes"] for u in uploads(session) if u["name"] != replacing)
    if used + new_bytes > lim.decoded_mb * 2**20:
        raise QuotaExceeded(f"Decoded, this dataset takes {new_bytes / 2**20:,.0f} MB and your other uploads "
                            f"{used / 2**20:,.0f} MB; one session's datasets may take at most {lim.decoded_mb:,} MB "
                            f"decoded on this server (TL_QUOTA_DECODED_MB). Delete an upload on the Data page, or "
                            f"upload fewer or smaller images.")


def uploads(session: Session) -> list[dict[str, Any]]:
    """This session's uploaded datasets: name, domain, bytes on disk and decoded."""
    area = access.session_dir(session) / "domains"
    out = []
    for p in sorted(area.iterdir()) if area.is_dir() else []:
        if p.is_dir() and access.NAME.match(p.name):
            out.append({"name": p.name, "domain": f"upload:{session.owner}/{p.name}",
                        "bytes": access.usage_bytes(p), "decoded_bytes": _decoded_of(session, p)})
    return out


def _decoded_of(session: Session, folder: Path) -> int:
    """The decoded bytes noted at upload; for a dataset with no note, its plan from the images' headers."""
    try:
        return int(json.loads((_books(session) / f"{folder.name}.json").read_text())["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return int(FolderDomain(folder).plan()["bytes"])
        except TLError:
            return 0


def delete_upload(session: Session, name: str) -> None:
    """Delete one of this session's uploaded datasets (its runs keep their results); frees its quota."""
    area = access.session_dir(session)
    clean = str(name)
    if not access.NAME.match(clean) or not (area / "domains" / clean).is_dir():
        raise ConfigError("There is no upload of that name among yours.")
    with _name_lock(area, clean):
        gone = area / ".tmp" / (uuid.uuid4().hex + "-deleted")
        os.replace(area / "domains" / clean, gone)
        shutil.rmtree(gone, ignore_errors=True)
        (_books(session) / f"{clean}.json").unlink(missing_ok=True)


# -- folders on the server -------------------------------------------------------------------

def add_folder(path: str, session: Session) -> dict[str, Any]:
    """A folder on the server as a domain `folder:<real path>`, if it lies inside the allowed roots;
    remembered in the session's area so that it survives a reload."""
    real = access.resolve_folder(path, session)
    d = open_folder(real, name=f"folder:{real}", label=real.name)
    if not session.is_cli:
        known = folders(session)
        if d.name not in known:
            f = access.session_dir(session) / "folders.json"
            atomic_write_text(f, json.dumps(known + [d.name]))
    return {"domain": d.name, "label": d.label, "classes": d.classes, "warnings": d.warnings}


def folders(session: Session) -> list[str]:
    """The server folders this session added, still allowed (roots can change between restarts)."""
    f = access.session_dir(session) / "folders.json"
    try:
        names = json.loads(f.read_text()) if f.exists() else []
    except (OSError, ValueError):
        return []
    out = []
    for n in names if isinstance(names, list) else []:
        try:
            access.resolve_folder(str(n)[len("folder:"):], session)
            out.append(str(n))
        except TLError:
            continue
    return out


# -- model files ----------------------------------------------------------------------------

def store_model(weights: bytes, meta: bytes, name: str, session: Session) -> Path:
    """Check an uploaded model and keep it in the session's `models/` area. The folder's name carries a
    hash of the content, so a new file under an old name is a new model (never a stale cached one)."""
    import hashlib

    clean = access.clean_name(name, what="model")
    allowance = access.upload_allowance(session)
    if allowance is not None and len(weights) + len(meta) > allowance:
        lim = access.limits()
        raise access.quota_upload("session", lim.upload_mb, "TL_QUOTA_UPLOAD_MB")
    digest = hashlib.sha256(weights + b"\0" + meta).hexdigest()[:12]
    models = access.session_dir(session) / "models"
    stored = check_and_store(weights, meta, models / f"{clean}--{digest}")  # refused: nothing changes
    for old in models.glob(f"{clean}--*"):  # only once the new one is in place, the previous one goes
        if old.name != stored.name:
            shutil.rmtree(old, ignore_errors=True)
    return stored


def delete_model(session: Session, ref: str) -> None:
    """Delete one of this session's uploaded models; frees its quota."""
    shutil.rmtree(model_folder(session, ref), ignore_errors=True)


def model_folder(session: Session, ref: str) -> Path:
    """The folder of one of this session's uploaded models (`upload:<folder name>`)."""
    name = ref[len("upload:"):] if ref.startswith("upload:") else ""
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}--[0-9a-f]{12}$", name):
        raise ConfigError("That model is not one of yours: add it again on the Predict page.")
    folder = access.session_dir(session) / "models" / name
    if not (folder / "model.json").exists():
        raise ConfigError("That model file is no longer there: add it again on the Predict page.")
    return folder
