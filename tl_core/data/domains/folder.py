"""Image folders in ImageFolder layout (`root/<class>/<image>`), registered by path."""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from tl_core.base.errors import ConfigError, DataUnavailable
from tl_core.base.limits import check_domain_size, megabytes
from tl_core.base.paths import uploads_root
from tl_core.data.domains import names
from tl_core.data.domains.base import Domain, DomainData, register_domain

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
# the formats Pillow may open, whatever a file's extension says (an EPS named .png is refused unread:
# Pillow would hand it to Ghostscript)
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
STORE_SIZE = 224  # images are kept square, at most this size; backbones resize from there
MIN_STORE_SIZE = 16  # below this a dataset is refused rather than shrunk to fit its decoded-bytes quota
MAX_PIXELS = 40_000_000  # checked from the header, before any pixel is decoded
MAX_SIDE = 512  # an output (a stored or previewed image) is never larger than this on a side
TEST_EVERY = 5  # every 5th image of a class (sorted by name) is in the test split
MAX_SCAN_ENTRIES = 100_000  # files and folders a scan visits at most; a larger tree is refused
SCAN_TTL_S = 30.0  # a scan is reused for this long while the folders' times are unchanged


def is_junk(p: Path | str) -> bool:
    name = p if isinstance(p, str) else p.name
    return name.startswith(".") or name.startswith("__") or name in {"Thumbs.db", "desktop.ini"}


def class_name(folder_name: str) -> str:
    """A class folder's name as a class: Unicode NFC, so names typed on different systems (an accent
    as one character, or as a letter and a combining mark) are the same class."""
    import unicodedata

    return unicodedata.normalize("NFC", folder_name)


def quoted(name: str) -> str:
    """A user's name quoted for a message: characters that are invisible or that reorder or break the
    text (direction marks, joiners, controls, combining marks) written as \\uXXXX, so two names that look
    alike are told apart and nothing garbles the sentence around them."""
    import unicodedata

    out = []
    for ch in str(name)[:80]:
        cat = unicodedata.category(ch)
        out.append(f"\\u{ord(ch):04x}" if cat[0] in "CZM" and ch != " " else ch)
    return "'" + "".join(out) + "'"


_SCANS: "OrderedDict[tuple, tuple[float, dict[str, list[Path]]]]" = OrderedDict()
_SCAN_LOCK = threading.Lock()


def _scan_key(root: Path) -> tuple:
    """(real path, the folder's modification time): what a cached scan is valid for (for SCAN_TTL_S)."""
    real = root.resolve()
    return (str(real), real.stat().st_mtime_ns)


def _too_many() -> ConfigError:
    return ConfigError(f"That folder holds more than {MAX_SCAN_ENTRIES:,} files and folders; a dataset must be "
                       f"smaller. Point at a folder with one sub-folder per class.")


def scan_folder(root: Path) -> dict[str, list[Path]]:
    """Class name (see `class_name`) -> sorted image paths; hidden and system entries are ignored.

    A scan visits at most MAX_SCAN_ENTRIES entries and is cached by (path, modification time) for
    SCAN_TTL_S seconds, so a page that asks about the same folder many times lists it once. Two class
    folders that are one class once normalised are refused (see `class_key`)."""
    root = Path(root)
    key = _scan_key(root)
    now = time.monotonic()
    with _SCAN_LOCK:
        hit = _SCANS.get(key)
        if hit is not None and now - hit[0] < SCAN_TTL_S:
            _SCANS.move_to_end(key)
            return {c: list(f) for c, f in hit[1].items()}
    visited = [0]

    def walk(d: str, out: list[Path]) -> None:
        with os.scandir(d) as it:
            for e in it:
                visited[0] += 1
                if visited[0] > MAX_SCAN_ENTRIES:
                    raise _too_many()
                if is_junk(e.name):
                    continue
                if e.is_dir(follow_symlinks=False):
                    walk(e.path, out)
                elif e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTS:
                    out.append(Path(e.path))

    classes: dict[str, list[Path]] = {}
    seen: dict[str, str] = {}
    real = key[0]
    with os.scandir(real) as it:
        dirs = []
        for e in it:
            visited[0] += 1
            if visited[0] > MAX_SCAN_ENTRIES:
                raise _too_many()
            if e.is_dir() and not is_junk(e.name):
                dirs.append(e.name)
        dirs.sort()
    for name in dirs:
        files: list[Path] = []
        walk(os.path.join(real, name), files)
        if not files:
            continue
        ck = class_key(name)
        if ck in seen:
            raise ConfigError(f"The class folders {quoted(seen[ck])} and {quoted(name)} look the same (they differ "
                              f"only by case, spacing, accents written two ways or invisible characters); merge "
                              f"or rename them.")
        seen[ck] = name
        classes[class_name(name)] = sorted(Path(root) / name / f.relative_to(os.path.join(real, name)) for f in files)
    with _SCAN_LOCK:
        _SCANS[key] = (now, classes)
        while len(_SCANS) > 64:
            _SCANS.popitem(last=False)
    return {c: list(f) for c, f in classes.items()}


def clear_scan_cache() -> None:
    with _SCAN_LOCK:
        _SCANS.clear()


_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
              7: "TRANSVERSE", 8: "ROTATE_90"}


def open_image(path):
    """Open an image lazily (nothing decoded) if it is one of ALLOWED_FORMATS as Pillow detects it from
    its bytes, and its header says at most MAX_PIXELS; else ValueError in words."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own bomb check, for formats that decode early
    try:
        im = Image.open(path, formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as e:
        raise ValueError(f"the image is larger than the {MAX_PIXELS // 1_000_000} megapixels accepted ({e})") from None
    except UnidentifiedImageError:
        raise ValueError(f"not an image in an accepted format ({', '.join(ALLOWED_FORMATS)})") from None
    w, h = im.size  # from the header only: nothing is decoded yet
    if w < 1 or h < 1 or w * h > MAX_PIXELS:
        im.close()
        raise ValueError(f"{w}x{h} pixels is outside the 1 to {MAX_PIXELS // 1_000_000} megapixels accepted")
    return im


def image_side(path) -> int:
    """The side of the centred square an image gives (the smaller of its width and height), from its header."""
    with open_image(path) as im:
        return min(im.size)


def load_image(path, size: int = STORE_SIZE) -> np.ndarray:
    """Decode one image as (3, size, size) uint8: the centred square cut, resized, EXIF-rotated, RGB.

    Memory follows the decoded pixels, never a float copy of them: the input's pixel count is read from
    the header before anything is decoded (at most MAX_PIXELS; JPEG decodes at a reduced scale when it
    is big enough); the square is cut and resized in the file's own mode (16-bit and float images too,
    scaled to 8 bits only once small; transparency composited over white once small), so a 6,300 x
    6,300 float TIFF or RGBA PNG costs its own decode and a few small copies. The output is exactly
    size x size (size <= MAX_SIDE)."""
    from PIL import Image

    if not 1 <= size <= MAX_SIDE:
        raise ValueError(f"an output size of {size} pixels is outside 1..{MAX_SIDE}")
    with open_image(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))  # decode at a reduced scale when it is big enough
        orientation = im.getexif().get(0x0112, 1)
        if im.mode in ("1", "P", "PA") or (im.mode.startswith("I;16") and im.mode != "I;16"):
            # palette and 1-bit images cannot be resampled smoothly; big-endian 16-bit cannot be resampled
            im = im.convert("RGBA" if im.mode in ("P", "PA") and ("transparency" in im.info or im.mode == "PA")
                            else "I" if im.mode.startswith("I;16") else "RGB" if im.mode == "P" else "L")
        lo_hi = im.getextrema() if im.mode in ("I", "I;16", "F") else None
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        if im.mode in ("RGBA", "LA") and side > 4 * size:
            # Pillow premultiplies a full-size copy of an image with alpha before resampling it: shrink
            # the square by a whole factor a strip at a time first, so only a strip is ever copied
            im = _reduce_in_strips(im, side // (2 * size), (left, top, left + side, top + side))
            w, h = im.size
            side, left, top = min(w, h), 0, 0
        small = im.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side),
                          reducing_gap=3.0 if side > 3 * size and im.mode != "I;16" else None)
    if lo_hi is not None:  # 16-bit or float: scale to 8 bits, do not clip
        arr = np.nan_to_num(np.asarray(small, dtype=np.float32))
        lo, hi = float(lo_hi[0]), float(lo_hi[1])
        lo, hi = (0.0 if not np.isfinite(lo) else min(lo, 0.0)), (255.0 if not np.isfinite(hi) or hi <= 255 else hi)
        small = Image.fromarray(np.clip((arr - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8))
    if small.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = small.convert("RGBA")
        small = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    small = small.convert("RGB")
    if orientation in _TRANSPOSE:
        small = small.transpose(getattr(Image.Transpose, _TRANSPOSE[orientation]))
    return np.asarray(small, dtype=np.uint8).transpose(2, 0, 1).copy()


def _reduce_in_strips(im, factor: int, box: tuple[int, int, int, int], rows_out: int = 64):
    """`im.reduce(factor, box)`, made strip by strip (`rows_out` output rows each)."""
    from PIL import Image

    left, top, right, bottom = box
    w, h = (right - left) // factor, (bottom - top) // factor
    out = Image.new(im.mode, (w, h))
    for y in range(0, h, rows_out):
        n = min(rows_out, h - y)
        strip = im.crop((left, top + y * factor, left + w * factor, top + (y + n) * factor))
        out.paste(strip.reduce(factor), (0, y))
    return out


def decoded_bytes(n_images: int, side: int) -> int:
    return n_images * 3 * side * side


def working_size(n_images: int, largest_side: int, cap_bytes: int | None) -> int:
    """The side a folder dataset is kept at: its largest image's square side, at most STORE_SIZE, and
    small enough that all its images fit in `cap_bytes` decoded (None: no cap). 0 when even
    MIN_STORE_SIZE does not fit."""
    side = max(1, min(STORE_SIZE, largest_side))
    if cap_bytes and decoded_bytes(n_images, side) > cap_bytes:
        side = int((cap_bytes / max(1, 3 * n_images)) ** 0.5)
        if side < min(MIN_STORE_SIZE, largest_side):
            return 0
    return side


def decoded_cap_bytes() -> int | None:
    """Decoded bytes one folder or uploaded dataset may take (TL_QUOTA_DOMAIN_DECODED_MB; 0: no cap)."""
    return megabytes("TL_QUOTA_DOMAIN_DECODED_MB")


def split_of(kept: int, n: int) -> str:
    """Every 5th readable image of a class is test; a class of fewer than 5 still gets one (its last)."""
    return "test" if kept % TEST_EVERY == TEST_EVERY - 1 or (n < TEST_EVERY and kept == n - 1) else "train"


class FolderDomain(Domain):
    """A user's images: one sub-folder per class. Split: every 5th image per class is test.

    Kept at the working size (`working_size`): the largest image's own square side, at most 224 px and
    within the decoded-bytes quota, so a dataset of tiny images stays tiny; inputs are resized to the
    backbone's size per batch."""

    channels, native_size = 3, STORE_SIZE
    version = "2"

    def __init__(self, root: Path, name: str | None = None, label: str | None = None):
        self.root = Path(root).expanduser()
        self.name = name or f"folder:{self.root}"
        self.label = label or self.root.name
        self.uploaded = self.name.startswith("upload:")  # an upload's name always is `upload:OWNER/NAME`
        self.description = (f"Your uploaded images ({self.label}), one sub-folder per class." if self.uploaded else
                            f"Your images in the folder {self.root.name} (one sub-folder per class).")
        self._classes: list[str] | None = None
        self._plan: dict | None = None
        self.skipped: list[tuple[str, str]] = []
        self.warnings: list[str] = []

    @property
    def classes(self) -> list[str]:  # type: ignore[override]
        if self._classes is None:
            ok, why = self.available()
            if not ok:
                raise DataUnavailable(why)
            self._classes = sorted(scan_folder(self.root))
        return self._classes

    def variant(self) -> str:
        return "upload" if self.uploaded else "folder"

    def available(self) -> tuple[bool, str]:
        if not self.root.is_dir():
            return False, (f"The dataset {self.label} is no longer there (deleted or moved). Add it again: a "
                           f"folder with one sub-folder per class.")
        n = len(scan_folder(self.root))
        if n < 2:
            return False, (f"{self.label} has {n} class folder(s) with images; at least 2 are needed, "
                           f"laid out as {self.label}/<class name>/<image files>.")
        return True, ""

    def cache_key(self) -> str:
        # the listing (names, sizes, times) and the decoded-bytes cap are part of the key: changed files
        # (or a changed cap) are decoded again
        h = hashlib.sha1(f"{self.root.resolve()}|{decoded_cap_bytes()}".encode())
        for c, files in scan_folder(self.root).items():
            for f in files:
                st = f.stat()
                h.update(f"{c}/{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
        return f"folder-{self.root.name}-{h.hexdigest()[:12]}-v{self.version}"

    def plan(self) -> dict:
        """What decoding will make, from the images' headers alone: per class the readable files, the
        unreadable ones with why, the working size and the decoded bytes."""
        if self._plan is not None:
            return self._plan
        listing = scan_folder(self.root)
        readable: dict[str, list[Path]] = {}
        skipped, largest = [], 1
        for c in sorted(listing):
            readable[c] = []
            for f in listing[c]:
                try:
                    largest = max(largest, image_side(f))
                    readable[c].append(f)
                except Exception as e:  # noqa: BLE001 - unreadable image: skip it and say so
                    skipped.append((str(f), f"{type(e).__name__}: {e}"))
        n = sum(len(v) for v in readable.values())
        cap = decoded_cap_bytes()
        side = working_size(n, largest, cap)
        self._plan = {"readable": readable, "skipped": skipped, "n_images": n, "largest_side": largest,
                      "side": side, "bytes": decoded_bytes(n, side), "cap_bytes": cap}
        return self._plan

    def _decode(self) -> DomainData:
        plan = self.plan()
        readable, side = plan["readable"], plan["side"]
        classes = sorted(readable)
        check_domain_size(plan["n_images"], len(classes))  # the folder may have grown
        if side == 0:
            raise ConfigError(_too_big(self.label, plan))
        splits = {c: [split_of(k, len(fs)) for k in range(len(fs))] for c, fs in readable.items()}
        counts = {s: sum(v.count(s) for v in splits.values()) for s in ("train", "test")}
        x = {s: torch.empty((counts[s], 3, side, side), dtype=torch.uint8) for s in counts}
        y = {s: torch.empty(counts[s], dtype=torch.int64) for s in counts}
        filled = {"train": 0, "test": 0}
        self.skipped = list(plan["skipped"])
        for ci, c in enumerate(classes):
            for f, split in zip(readable[c], splits[c]):
                try:
                    img = load_image(f, side)
                except Exception as e:  # noqa: BLE001 - a header that promised more than the file holds
                    self.skipped.append((str(f), f"{type(e).__name__}: {e}"))
                    continue
                i = filled[split]
                x[split][i] = torch.from_numpy(img)
                y[split][i] = ci
                filled[split] = i + 1
        if not filled["train"] or not filled["test"]:
            raise ConfigError(f"{self.label} has too few readable images to make a train and a test split "
                              f"(need at least {TEST_EVERY} per class).")
        cut = lambda t, s: t[s][:filled[s]] if filled[s] < counts[s] else t[s]  # noqa: E731
        return DomainData(self.name, classes, cut(x, "train"), cut(y, "train"), cut(x, "test"), cut(y, "test"))

    def preview(self, per_class: int = 4, seed: int = 0, size: int = 64) -> dict:
        """A few images per class and the counts, decoding only the images shown (at `size` px), never
        the whole dataset: what the Data page shows of a folder."""
        import random

        listing = scan_folder(self.root)
        classes = sorted(listing)
        rng = random.Random(seed)
        grid, train_counts, test_counts = [], {}, {}
        for c in classes:
            files = listing[c]
            splits = [split_of(k, len(files)) for k in range(len(files))]
            train_counts[c], test_counts[c] = splits.count("train"), splits.count("test")
            shown = []
            for f in rng.sample(files, len(files)):
                if len(shown) >= per_class:
                    break
                try:
                    shown.append(load_image(f, size).transpose(1, 2, 0))
                except Exception:  # noqa: BLE001 - an unreadable file is not shown
                    continue
            grid.append(np.stack(shown) if shown else np.zeros((0, size, size, 3), np.uint8))
        return {"classes": classes, "grid": grid, "train_counts": train_counts, "test_counts": test_counts,
                "size": (size, size), "channels": 3, "n_train": sum(train_counts.values()),
                "n_test": sum(test_counts.values())}

    def sample(self, per_class: int, seed: int = 0, size: int = 128,
               splits: tuple[str, ...] = ("train",)) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Up to `per_class` images of each class drawn from `splits`, decoding only those (at `size` px),
        with the number of images those splits hold: what the advisor reads of a folder, never the
        whole of it. (images uint8 (N, 3, size, size), labels, images in the splits)."""
        import random

        listing = scan_folder(self.root)
        rng = random.Random(seed)
        xs, ys, total = [], [], 0
        for ci, c in enumerate(sorted(listing)):
            files = listing[c]
            pool = [f for k, f in enumerate(files) if split_of(k, len(files)) in splits]
            total += len(pool)
            got = 0
            for f in rng.sample(pool, len(pool)):
                if got >= per_class:
                    break
                try:
                    xs.append(load_image(f, size))
                except Exception:  # noqa: BLE001 - an unreadable file is skipped, as decoding does
                    continue
                ys.append(ci)
                got += 1
        if not xs:
            raise ConfigError(f"{self.label} has no readable image to score.")
        return torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.int64), total

    def sample_images(self, n: int = 8, size: int = 64) -> np.ndarray:
        """The first n readable images of the classes in turn, (n, 3, size, size) uint8, decoding only those."""
        listing = scan_folder(self.root)
        out: list[np.ndarray] = []
        for f in [f for fs in zip(*listing.values()) for f in fs]:
            if len(out) >= n:
                break
            try:
                out.append(load_image(f, size))
            except Exception:  # noqa: BLE001
                continue
        if not out:
            raise ConfigError(f"{self.label} has no readable image to show.")
        return np.stack(out)


def _too_big(label: str, plan: dict) -> str:
    return (f"{label} has {plan['n_images']:,} images: even at {MIN_STORE_SIZE} px they take more than the "
            f"{(plan['cap_bytes'] or 0) // 2**20} MB of decoded pixels one dataset may use on this server "
            f"(TL_QUOTA_DOMAIN_DECODED_MB). Use fewer images.")


SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "testing"}
MIN_PER_CLASS, WARN_PER_CLASS = 2, 5


def example_tree(shown: str) -> str:
    return f"Expected one sub-folder per class, e.g.  {shown}/cat/1.jpg, {shown}/cat/2.jpg, {shown}/dog/1.jpg"


def check_layout(root: Path, label: str | None = None) -> list[str]:
    """Refuse layouts that are not one folder per class (with an example of the right one, naming the
    dataset `label`, by default the folder's name); return warnings for what is accepted but weak.
    Class names are compared as text only."""
    import unicodedata

    root = Path(root)
    shown = label or root.name
    if not root.is_dir():
        raise ConfigError(f"The folder {shown} does not exist. {example_tree(shown)}.")
    listing = scan_folder(root)
    subdirs = [p for p in root.iterdir() if p.is_dir() and not is_junk(p)]
    flat = [f for f in root.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS]
    if subdirs and {p.name.lower() for p in subdirs} <= SPLIT_NAMES and any(
            q.is_dir() for p in subdirs for q in p.iterdir()):
        raise ConfigError(f"{shown} looks split into {', '.join(sorted(p.name for p in subdirs))} folders. "
                          f"Use one split as a domain (e.g. {shown}/{sorted(p.name for p in subdirs)[0]}), "
                          f"or merge them. {example_tree(shown)}.")
    if not listing and flat:
        raise ConfigError(f"{shown} holds {len(flat)} images but no class folders, so the classes are unknown. "
                          f"{example_tree(shown)}.")
    if len(listing) < 2:
        raise ConfigError(f"{shown} has {len(listing)} class folder(s) with images ({', '.join(map(quoted, listing)) or 'none'}); "
                          f"at least 2 classes are needed. {example_tree(shown)}.")
    bad = [c for c in listing if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") or unicodedata.bidirectional(ch)
                                     in ("LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI") for ch in c)]
    if bad:
        raise ConfigError(f"The class folder name {quoted(bad[0])} holds a line break, a control character or a "
                          f"text-direction override; "
                          f"rename the folder (letters, digits, spaces and punctuation).")
    tiny = {c: len(f) for c, f in listing.items() if len(f) < MIN_PER_CLASS}
    if tiny:
        raise ConfigError("Too few images in class " + ", ".join(f"{quoted(c)} ({n})" for c, n in tiny.items())
                          + f": each class needs at least {MIN_PER_CLASS} (one to train on, one to test).")
    return [f"class {quoted(c)} has only {len(f)} images; with fewer than {WARN_PER_CLASS} its accuracy means little"
            for c, f in listing.items() if len(f) < WARN_PER_CLASS]


def check_readable(d: "FolderDomain") -> None:
    """Refuse a dataset with a class that has fewer than MIN_PER_CLASS images Pillow can open in an
    accepted format, or one too big to decode within its quota; reads headers only."""
    plan = d.plan()
    few = {c: len(fs) for c, fs in plan["readable"].items() if len(fs) < MIN_PER_CLASS}
    if few:
        why = plan["skipped"][0][1].split(": ", 1)[-1] if plan["skipped"] else ""
        raise ConfigError("Too few readable images in class " + ", ".join(f"{quoted(c)} ({n})" for c, n in few.items())
                          + f": each class needs at least {MIN_PER_CLASS} images in an accepted format "
                          f"({', '.join(ALLOWED_FORMATS)})" + (f"; for example: {why}" if why else "") + ".")
    if plan["side"] == 0:
        raise ConfigError(_too_big(d.label, plan))


def class_key(name: str) -> str:
    """What makes two class names the same class: Unicode NFKC, case folded, invisible characters
    (zero-width spaces, joiners, direction marks, controls) removed, runs of spaces as one."""
    import unicodedata

    s = unicodedata.normalize("NFKC", name).casefold()
    s = "".join(ch for ch in s if unicodedata.category(ch) not in ("Cf", "Cc", "Co", "Cn"))
    return " ".join(s.split())


def open_folder(path: str | Path, name: str | None = None, label: str | None = None) -> FolderDomain:
    """An image folder as a domain (not registered), after checking its layout and size; its layout
    warnings are in `.warnings`."""
    root = Path(path).expanduser()
    warnings = check_layout(root, label)
    d = FolderDomain(root, name=name or root.name, label=label)
    ok, why = d.available()
    if not ok:
        raise ConfigError(why)
    listing = scan_folder(root)
    check_domain_size(sum(len(f) for f in listing.values()), len(listing))
    check_readable(d)
    plan = d.plan()
    if plan["skipped"]:
        warnings.append(f"{len(plan['skipped'])} file(s) are not images in an accepted format and are skipped")
    if plan["side"] < min(STORE_SIZE, plan["largest_side"]):
        warnings.append(f"kept at {plan['side']} px (not {min(STORE_SIZE, plan['largest_side'])}) so that its "
                        f"{plan['n_images']:,} images fit the decoded-bytes quota (TL_QUOTA_DOMAIN_DECODED_MB)")
    d.warnings = warnings
    return d


def register_folder(path: str | Path, name: str | None = None, label: str | None = None) -> FolderDomain:
    """Register an image folder as a domain under `name` (default: the folder's name)."""
    return register_domain(open_folder(path, name, label), replace=True)  # type: ignore[return-value]


def upload_domain(name: str) -> FolderDomain:
    """`upload:OWNER/NAME`: a dataset uploaded by a session (or ingested from the command line, OWNER
    `cli`), kept under TL_HOME/uploads/OWNER/domains/NAME."""
    n = names.parse(name)  # refuses a malformed owner or dataset name
    if n.kind != "upload" or n.shifts:
        raise ConfigError(f"Unknown dataset {name[:80]!r}.")
    return FolderDomain(uploads_root() / n.owner / "domains" / n.dataset, name=name, label=n.dataset)
