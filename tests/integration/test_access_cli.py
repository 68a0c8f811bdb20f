"""The command line's ingest refuses what it cannot unpack, with status 2 and nothing kept (the unit tier
holds the rest of the classroom's access rules)."""
import os

from conftest import flip_zip_header, good_zip


def upload_files(home) -> list:
    return [p for p in (home / "uploads").rglob("*") if p.is_file() and p.name != "folders.json"
            and p.suffix != ".lock"] \
        if (home / "uploads").exists() else []


def test_cli_ingest_refuses_what_it_cannot_unpack_with_status_2_and_leaves_nothing(home, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    bad = {"encrypted.zip": flip_zip_header(good_zip(), 6, b"\x01\x00"), "aes.zip": flip_zip_header(good_zip(), 8, b"\x63\x00"),
           "truncated.zip": good_zip()[:300], "empty.zip": b"", "text.zip": b"not a zip at all"}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        p = subprocess.run([sys.executable, "-m", "tl_core", "ingest", str(tmp_path / name)], cwd=ROOT,
                           env={**os.environ, "TL_HOME": str(home)}, capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, (name, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr and p.stderr.startswith("error: "), (name, p.stderr)
        assert upload_files(home) == [], name
