"""Procedural image generation for the offline domains (fonts and photographs from pip packages)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

# Text fonts with ordinary digit glyphs; symbol-only fonts (cmex, cmsy, STIX size variants) are left out.
_FONT_NAMES = [
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf", "STIXGeneral.ttf",
    "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf", "cmr10.ttf", "cmb10.ttf",
    "cmss10.ttf", "cmtt10.ttf", "cmti10.ttf",
]


@lru_cache(maxsize=1)
def font_paths() -> list[Path]:
    import matplotlib

    base = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return [base / n for n in _FONT_NAMES if (base / n).exists()]


def render_digits(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Render `n` RGB digit images (n, 3, size, size) uint8 and their labels, deterministically.

    Each image varies font, size, stroke, rotation, offset, colours and background, and
    may show parts of neighbouring digits at the sides, as house numbers do.
    """
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    rng = np.random.default_rng(seed)
    fonts = font_paths()
    if not fonts:
        raise RuntimeError("matplotlib's bundled fonts were not found; reinstall matplotlib")
    cache: dict[tuple[int, int], ImageFont.FreeTypeFont] = {}
    labels = np.arange(n, dtype=np.int64) % 10
    rng.shuffle(labels)
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    big = size * 2  # render large, then rotate and downsample: smoother strokes
    for i in range(n):
        fi = int(rng.integers(len(fonts)))
        fs = int(rng.integers(int(big * 0.55), int(big * 0.85)))
        font = cache.get((fi, fs))
        if font is None:
            font = cache[(fi, fs)] = ImageFont.truetype(str(fonts[fi]), fs)
        bg = rng.integers(0, 256, 3)
        fg = rng.integers(0, 256, 3)
        while np.abs(fg.astype(int) - bg.astype(int)).sum() < 180:  # keep the digit readable
            fg = rng.integers(0, 256, 3)
        img = Image.new("RGB", (big * 2, big), tuple(int(v) for v in bg))
        draw = ImageDraw.Draw(img)
        stroke = int(rng.integers(0, 3))
        # neighbours left and right, then the labelled digit in the middle
        for dx, digit in ((-0.62, int(rng.integers(10))), (0.62, int(rng.integers(10))), (0.0, int(labels[i]))):
            if dx != 0.0 and rng.random() < 0.4:
                continue
            cx = big + dx * big + rng.normal(0, big * 0.04)
            cy = big / 2 + rng.normal(0, big * 0.05)
            draw.text((cx, cy), str(digit), font=font, fill=tuple(int(v) for v in fg), anchor="mm",
                      stroke_width=stroke, stroke_fill=tuple(int(v) for v in fg))
        img = img.rotate(float(rng.normal(0, 8)), resample=Image.BILINEAR, center=(big, big / 2),
                         fillcolor=tuple(int(v) for v in bg))
        img = img.crop((big // 2, 0, big // 2 + big, big))
        if rng.random() < 0.3:
            img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))
        img = img.resize((size, size), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.float32)
        arr += rng.normal(0, rng.uniform(0, 8), arr.shape)  # sensor noise
        out[i] = np.clip(arr, 0, 255).astype(np.uint8).transpose(2, 0, 1)
    return out, labels


@lru_cache(maxsize=1)
def texture_photos() -> list[np.ndarray]:
    """Colour photographs bundled with scikit-image, as (H, W, 3) uint8."""
    from skimage import data

    photos = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel"):
        try:
            img = np.asarray(getattr(data, name)())
        except Exception:  # a sample missing from this scikit-image build
            continue
        if img.ndim == 3 and img.shape[2] >= 3:
            photos.append(np.ascontiguousarray(img[..., :3].astype(np.uint8)))
    if not photos:
        raise RuntimeError("scikit-image's sample photographs were not found; reinstall scikit-image")
    return photos


def blend_on_textures(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MNIST-M blending: out = |crop - digit| per channel, digits (N, 1, H, W) uint8 -> (N, 3, H, W)."""
    photos = texture_photos()
    n, _, h, w = digits.shape
    out = np.empty((n, 3, h, w), dtype=np.uint8)
    which = rng.integers(len(photos), size=n)
    u = rng.random((n, 2))
    for i in range(n):
        p = photos[which[i]]
        y0 = int(u[i, 0] * (p.shape[0] - h))
        x0 = int(u[i, 1] * (p.shape[1] - w))
        crop = p[y0:y0 + h, x0:x0 + w].transpose(2, 0, 1).astype(np.int16)
        out[i] = np.abs(crop - digits[i].astype(np.int16)).astype(np.uint8)
    return out
