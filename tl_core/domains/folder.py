"""Image folders in ImageFolder layout (`root/<class>/<image>`), registered by path."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataUnavailable
from .base import Domain, DomainData, register_domain

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
STORE_SIZE = 224  # images are kept square at this size; backbones resize from there
MAX_PIXELS = 40_000_000  # checked from the header, before any pixel is decoded
MAX_SIDE = 512  # an output (a stored or previewed image) is never larger than this on a side
TEST_EVERY = 5  # every 5th image of a class (sorted by name) is in the test split


def _is_junk(p: Path | str) -> bool:
    name = p if isinstance(p, str) else p.name
    return name.startswith(".") or name.startswith("__") or name in {"Thumbs.db", "desktop.ini"}


def scan_folder(root: Path) -> dict[str, list[Path]]:
    """Class name -> sorted image paths; hidden and system entries are ignored."""
    classes: dict[str, list[Path]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not _is_junk(p)):
        files = sorted(f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS
                       and not any(_is_junk(part) for part in f.relative_to(d).parts))
        if files:
            classes[d.name] = files
    return classes


def load_image(path, size: int = STORE_SIZE) -> np.ndarray:
    """Decode one image as (3, size, size) uint8: EXIF-rotated, RGB, the centred square cropped, resized.

    Both ends are bounded: the input's pixel count is read from the header before anything is
    decoded (at most MAX_PIXELS), and the output is exactly size x size (size <= MAX_SIDE), whatever
    the aspect ratio: the square is cut from the source first, then resized, so a 1 x 40,000,000
    strip costs one pixel, not a 224 x 9-billion intermediate."""
    from PIL import Image, ImageOps

    if not 1 <= size <= MAX_SIDE:
        raise ValueError(f"an output size of {size} pixels is outside 1..{MAX_SIDE}")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own bomb check, for formats that decode early
    try:
        im_file = Image.open(path)
    except Image.DecompressionBombError as e:
        raise ValueError(f"the image is larger than the {MAX_PIXELS // 1_000_000} megapixels accepted ({e})") from None
    with im_file as im:
        w, h = im.size  # from the header only: nothing is decoded yet
        if w < 1 or h < 1 or w * h > MAX_PIXELS:
            raise ValueError(f"{w}x{h} pixels is outside the 1 to {MAX_PIXELS // 1_000_000} megapixels accepted")
        if im.format == "JPEG":
            im.draft("RGB", (max(size, 1), max(size, 1)))  # decode at a reduced scale when it is big enough
        im = ImageOps.exif_transpose(im)
        if im.mode == "CMYK":
            im = im.convert("RGB")
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit or float: scale to 8 bits, do not clip
            arr = np.asarray(im, dtype=np.float64)
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            hi = hi if hi > 255 else 255.0
            lo = min(lo, 0.0)
            im = Image.fromarray(((np.nan_to_num(arr) - lo) * (255.0 / max(hi - lo, 1.0))).astype(np.uint8))
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, rgba)
        im = im.convert("RGB")
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()


class FolderDomain(Domain):
    """A user's images: one sub-folder per class. Split: every 5th image per class is test."""

    channels, native_size = 3, STORE_SIZE

    def __init__(self, root: Path, name: str | None = None, label: str | None = None):
        self.root = Path(root).expanduser()
        self.name = name or f"folder:{self.root}"
        self.label = label or self.root.name
        uploaded = self.name.startswith("upload:")
        self.description = (f"Your uploaded images ({self.label}), one sub-folder per class." if uploaded else
                            f"Your images in the folder {self.root.name} (one sub-folder per class).")
        self._classes: list[str] | None = None
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
        # the listing (names, sizes, times) is part of the key: changed files are decoded again
        h = hashlib.sha1(str(self.root.resolve()).encode())
        for c, files in scan_folder(self.root).items():
            for f in files:
                st = f.stat()
                h.update(f"{c}/{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
        return f"folder-{self.root.name}-{h.hexdigest()[:12]}-v{self.version}"

    def _decode(self) -> DomainData:
        from ..access import check_domain_size

        listing = scan_folder(self.root)
        classes = sorted(listing)
        check_domain_size(sum(len(f) for f in listing.values()), len(classes))  # the folder may have grown
        xs: dict[str, list[np.ndarray]] = {"train": [], "test": []}
        ys: dict[str, list[int]] = {"train": [], "test": []}
        self.skipped = []
        for ci, c in enumerate(classes):
            kept = 0
            for f in listing[c]:
                try:
                    img = load_image(f)
                except Exception as e:  # unreadable image: skip it and say so
                    self.skipped.append((str(f), f"{type(e).__name__}: {e}"))
                    continue
                # every 5th image is test; a class of fewer than 5 still gets one (its last) in the test split
                n = len(listing[c])
                split = "test" if kept % TEST_EVERY == TEST_EVERY - 1 or (n < TEST_EVERY and kept == n - 1) else "train"
                xs[split].append(img)
                ys[split].append(ci)
                kept += 1
        if not xs["train"] or not xs["test"]:
            raise ConfigError(f"{self.root} has too few readable images to make a train and a test split "
                              f"(need at least {TEST_EVERY} per class).")
        stack = lambda s: torch.from_numpy(np.stack(xs[s]))  # noqa: E731
        lab = lambda s: torch.tensor(ys[s], dtype=torch.int64)  # noqa: E731
        return DomainData(self.name, classes, stack("train"), lab("train"), stack("test"), lab("test"))


SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "testing"}
MIN_PER_CLASS, WARN_PER_CLASS = 2, 5


def example_tree(root: Path) -> str:
    return (f"Expected one sub-folder per class, e.g.  {root.name}/cat/1.jpg, {root.name}/cat/2.jpg, "
            f"{root.name}/dog/1.jpg")


def check_layout(root: Path) -> list[str]:
    """Refuse layouts that are not one folder per class (with an example of the right one); return
    warnings for what is accepted but weak. Class names are compared as text only."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"The folder {root} does not exist. {example_tree(root)}.")
    listing = scan_folder(root)
    subdirs = [p for p in root.iterdir() if p.is_dir() and not _is_junk(p)]
    flat = [f for f in root.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS]
    if subdirs and {p.name.lower() for p in subdirs} <= SPLIT_NAMES and any(
            q.is_dir() for p in subdirs for q in p.iterdir()):
        raise ConfigError(f"{root.name} looks split into {', '.join(sorted(p.name for p in subdirs))} folders. "
                          f"Use one split as a domain (e.g. {root.name}/{sorted(p.name for p in subdirs)[0]}), "
                          f"or merge them. {example_tree(root)}.")
    if not listing and flat:
        raise ConfigError(f"{root.name} holds {len(flat)} images but no class folders, so the classes are unknown. "
                          f"{example_tree(root)}.")
    if len(listing) < 2:
        raise ConfigError(f"{root.name} has {len(listing)} class folder(s) with images ({', '.join(listing) or 'none'}); "
                          f"at least 2 classes are needed. {example_tree(root)}.")
    seen: dict[str, str] = {}
    for c in listing:
        if class_key(c) in seen:
            raise ConfigError(f"The class folders {seen[class_key(c)]!r} and {c!r} look the same (they differ only "
                              f"by case, spacing, accents written two ways or invisible characters); merge or "
                              f"rename them.")
        seen[class_key(c)] = c
    tiny = {c: len(f) for c, f in listing.items() if len(f) < MIN_PER_CLASS}
    if tiny:
        raise ConfigError("Too few images in class " + ", ".join(f"{c!r} ({n})" for c, n in tiny.items())
                          + f": each class needs at least {MIN_PER_CLASS} (one to train on, one to test).")
    return [f"class {c!r} has only {len(f)} images; with fewer than {WARN_PER_CLASS} its accuracy means little"
            for c, f in listing.items() if len(f) < WARN_PER_CLASS]


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
    from ..access import check_domain_size

    root = Path(path).expanduser()
    warnings = check_layout(root)
    d = FolderDomain(root, name=name or root.name, label=label)
    ok, why = d.available()
    if not ok:
        raise ConfigError(why)
    listing = scan_folder(root)
    check_domain_size(sum(len(f) for f in listing.values()), len(listing))
    d.warnings = warnings
    return d


def register_folder(path: str | Path, name: str | None = None, label: str | None = None) -> FolderDomain:
    """Register an image folder as a domain under `name` (default: the folder's name)."""
    return register_domain(open_folder(path, name, label), replace=True)  # type: ignore[return-value]


def upload_domain(name: str) -> FolderDomain:
    """`upload:OWNER/NAME`: a dataset uploaded by a session (or ingested from the command line, OWNER
    `cli`), kept under TL_HOME/uploads/OWNER/domains/NAME."""
    from ..access import NAME, OWNER, uploads_root

    owner, _, ds = name[len("upload:"):].partition("/")
    if not OWNER.match(owner) or not NAME.match(ds):
        raise ConfigError(f"Unknown dataset {name[:80]!r}.")
    return FolderDomain(uploads_root() / owner / "domains" / ds, name=name, label=ds)
