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


def load_image(path: Path, size: int = STORE_SIZE) -> np.ndarray:
    """Decode one image as (3, size, size) uint8: EXIF-rotated, RGB, shorter side resized, centre-cropped."""
    from PIL import Image, ImageOps

    try:
        im_file = Image.open(path)
    except Image.DecompressionBombError as e:  # Pillow's own header check, for the largest claims
        raise ValueError(f"the image is larger than the {MAX_PIXELS // 1_000_000} megapixels accepted ({e})") from None
    with im_file as im:
        w, h = im.size  # from the header only: nothing is decoded yet
        if w * h > MAX_PIXELS:
            raise ValueError(f"{w}x{h} pixels is more than the {MAX_PIXELS // 1_000_000} megapixels accepted")
        im = ImageOps.exif_transpose(im)
        if im.mode == "CMYK":
            im = im.convert("RGB")
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit: scale to 8 bits, do not clip
            arr = np.asarray(im, dtype=np.float64)
            hi = arr.max() if arr.max() > 255 else 255.0
            im = Image.fromarray((arr * (255.0 / max(hi, 1.0))).astype(np.uint8))
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, rgba)
        im = im.convert("RGB")
        w, h = im.size
        s = size / min(w, h)
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()


class FolderDomain(Domain):
    """A user's images: one sub-folder per class. Split: every 5th image per class is test."""

    channels, native_size = 3, STORE_SIZE

    def __init__(self, root: Path, name: str | None = None, label: str | None = None):
        self.root = Path(root).expanduser()
        self.name = name or f"folder:{self.root}"
        self.label = label or self.root.name
        self.description = f"Your images in {self.root} (one sub-folder per class)."
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
            return False, f"The folder {self.root} does not exist. Give the path of a folder with one sub-folder per class."
        n = len(scan_folder(self.root))
        if n < 2:
            return False, (f"{self.root} has {n} class folder(s) with images; at least 2 are needed, "
                           f"laid out as {self.root}/<class name>/<image files>.")
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
        listing = scan_folder(self.root)
        classes = sorted(listing)
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
    norm = lambda c: " ".join(c.casefold().split())  # noqa: E731
    seen: dict[str, str] = {}
    for c in listing:
        if norm(c) in seen:
            raise ConfigError(f"The class folders {seen[norm(c)]!r} and {c!r} differ only by case or spacing; "
                              f"merge or rename them.")
        seen[norm(c)] = c
    tiny = {c: len(f) for c, f in listing.items() if len(f) < MIN_PER_CLASS}
    if tiny:
        raise ConfigError("Too few images in class " + ", ".join(f"{c!r} ({n})" for c, n in tiny.items())
                          + f": each class needs at least {MIN_PER_CLASS} (one to train on, one to test).")
    return [f"class {c!r} has only {len(f)} images; with fewer than {WARN_PER_CLASS} its accuracy means little"
            for c, f in listing.items() if len(f) < WARN_PER_CLASS]


def register_folder(path: str | Path, name: str | None = None, label: str | None = None) -> FolderDomain:
    """Register an image folder as a domain under `name` (default: the folder's name). Its layout
    warnings are in `.warnings`."""
    root = Path(path).expanduser()
    warnings = check_layout(root)
    d = FolderDomain(root, name=name or root.name, label=label)
    ok, why = d.available()
    if not ok:
        raise ConfigError(why)
    d.warnings = warnings
    return register_domain(d, replace=True)  # type: ignore[return-value]
