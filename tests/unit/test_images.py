"""Image files as users have them: each is normalised to the stored RGB size, or skipped and reported."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tl_core.data.domains.folder import STORE_SIZE, FolderDomain, load_image


def save(path, im, fmt="PNG", **kw):
    im.save(path, fmt, **kw)
    return path


def check(arr):
    assert arr.shape == (3, STORE_SIZE, STORE_SIZE) and arr.dtype == np.uint8


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "RGB", "CMYK", "I;16", "1"])
def test_modes_become_rgb(tmp_path, mode):
    im = Image.new(mode, (40, 30))
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "I;16" else "PNG"
    check(load_image(save(tmp_path / f"x.{fmt.lower()}", im, fmt)))


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    im = Image.new("P", (20, 20), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.info["transparency"] = 0
    out = load_image(save(tmp_path / "p.png", im, transparency=0))
    assert out.min() == 255  # fully transparent -> white, not black


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    a = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)  # up to 65,520
    out = load_image(save(tmp_path / "deep.tif", Image.fromarray(a), "TIFF"))
    assert out.max() >= 250 and out.min() <= 5 and len(np.unique(out)) > 50


def test_exif_rotation_is_applied(tmp_path):
    im = Image.new("RGB", (60, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 30, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = load_image(save(tmp_path / "r.jpg", im, "JPEG", exif=exif.tobytes()))
    top, bottom = out[:, 10, STORE_SIZE // 2], out[:, -10, STORE_SIZE // 2]
    assert top[2] > 200 and bottom[0] > 200  # blue on top after rotation, red below


def _png_header_claiming(w, h) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("content", [
    b"not an image at all",  # non-image with an image extension
    "truncated",
    _png_header_claiming(30000, 30000),  # refused from the header, before decoding
])
def test_bad_files_are_skipped_and_reported_not_fatal(tmp_path, content):
    root = tmp_path / "data"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            save(root / c / f"{i}.png", Image.new("RGB", (16, 16), (i * 40, 0, 0)))
    if content == "truncated":
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (9, 9, 9)).save(buf, "JPEG")
        content = buf.getvalue()[:200]
    (root / "a" / "bad.png").write_bytes(content)
    dom = FolderDomain(root)
    d = dom.load()
    assert len(d.x_train) + len(d.x_test) == 10
    assert [p.endswith("bad.png") for p, _ in dom.skipped] == [True]


def test_huge_header_is_refused_before_decoding(tmp_path):
    p = tmp_path / "huge.png"
    p.write_bytes(_png_header_claiming(30000, 30000))
    with pytest.raises(ValueError, match="megapixels"):
        load_image(p)
