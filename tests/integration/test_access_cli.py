"""The command line's ingest refuses what it cannot unpack, with status 2 and nothing kept (the unit tier
holds the rest of the classroom's access rules)."""
import io
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import isolated_home


def png(v=0, size=10) -> bytes:
    b = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), v, np.uint8)).save(b, "PNG")
    return b.getvalue()


def zipped(entries: dict) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for n, d in entries.items():
            z.writestr(n, d)
    return b.getvalue()


def good_zip(prefix="set", n=5) -> bytes:
    return zipped({f"{prefix}/{c}/{i}.png": png(10 * i + k) for k, c in enumerate("ab") for i in range(n)})


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = isolated_home(tmp_path / "home")
    monkeypatch.setenv("TL_HOME", str(h))
    monkeypatch.delenv("TL_FOLDER_ROOTS", raising=False)
    return h


# -- identity -------------------------------------------------------------------------------


def upload_files(home) -> list:
    return [p for p in (home / "uploads").rglob("*") if p.is_file() and p.name != "folders.json"
            and p.suffix != ".lock"] \
        if (home / "uploads").exists() else []


def _flip(data: bytes, offset_in_header: int, value: bytes) -> bytes:
    """Change a field in every local and central header of a zip."""
    out = bytearray(data)
    for sig, off in ((b"PK\x03\x04", offset_in_header), (b"PK\x01\x02", offset_in_header + 2)):
        pos = 0
        while (pos := out.find(sig, pos)) >= 0:
            out[pos + off:pos + off + len(value)] = value
            pos += 4
    return bytes(out)


def test_cli_ingest_refuses_what_it_cannot_unpack_with_status_2_and_leaves_nothing(home, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    bad = {"encrypted.zip": _flip(good_zip(), 6, b"\x01\x00"), "aes.zip": _flip(good_zip(), 8, b"\x63\x00"),
           "truncated.zip": good_zip()[:300], "empty.zip": b"", "text.zip": b"not a zip at all"}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        p = subprocess.run([sys.executable, "-m", "tl_core", "ingest", str(tmp_path / name)], cwd=ROOT,
                           env={**os.environ, "TL_HOME": str(home)}, capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, (name, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr and p.stderr.startswith("error: "), (name, p.stderr)
        assert upload_files(home) == [], name
