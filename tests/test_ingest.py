"""Uploaded zips of class folders: refused when hostile, normalised when merely messy."""
import io
import os
import stat
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tl_core.app_api import ingest_zip
from tl_core.errors import ConfigError


def png(seed=0, size=12) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def make_zip(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            try:
                z.writestr(name, data)
            except (IndexError, ValueError):  # a name zipfile itself cannot store
                continue
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return buf.getvalue()


def good_entries(wrapper="shapes/") -> dict[str, bytes]:
    return {f"{wrapper}{c}/{i}.png": png(i + 10 * k) for k, c in enumerate(("circle", "square")) for i in range(6)}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_HOME", str(tmp_path))
    return tmp_path


def test_a_good_zip_becomes_a_domain_with_junk_ignored(home):
    entries = good_entries()
    entries.update({"__MACOSX/shapes/._1.png": b"junk", "shapes/circle/.DS_Store": b"x", "shapes/Thumbs.db": b"x"})
    res = ingest_zip(make_zip(entries), "shapes", session="s1")
    assert res["classes"] == ["circle", "square"]  # the wrapper folder was unwrapped
    assert len(res["skipped"]) == 3
    assert res["domain"].startswith("folder:") and str(home / "uploads" / "s1") in res["path"]
    from tl_core.domains import get_domain

    d = get_domain(res["domain"]).load()  # resolvable by name from any process
    assert len(d.x_train) + len(d.x_test) == 12


@pytest.mark.parametrize("bad", ["../evil.png", "shapes/../../evil.png", "/etc/evil.png", "C:/evil.png",
                                 "\\\\server\\share\\evil.png"])
def test_path_traversal_is_refused_and_nothing_is_written(home, bad):
    entries = good_entries()
    entries[bad] = png()
    with pytest.raises(ConfigError, match="outside its folder"):
        ingest_zip(make_zip(entries), "shapes", session="s1")
    assert not (home / "uploads" / "s1" / "shapes").exists()
    assert not (home.parent / "evil.png").exists()


def test_links_are_refused(home):
    with pytest.raises(ConfigError, match="link"):
        ingest_zip(make_zip(good_entries(), links={"shapes/circle/x.png": "/etc/passwd"}), "shapes", session="s1")


def test_zip_bomb_ratio_is_refused_before_extraction(home):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/x.png", b"\0" * 5_000_000)
        z.writestr("b/y.png", b"\0" * 5_000_000)
    with pytest.raises(ConfigError, match="zip bomb"):
        ingest_zip(buf.getvalue(), "bomb", session="s1")
    assert not (home / "uploads" / "s1" / "bomb").exists()


def test_not_a_zip_and_single_class_get_messages(home):
    with pytest.raises(ConfigError, match="not a zip"):
        ingest_zip(b"hello", "x", session="s1")
    one = {f"only/cat/{i}.png": png(i) for i in range(5)}
    with pytest.raises(ConfigError, match="at least 2 are needed.*For example"):
        ingest_zip(make_zip(one), "only", session="s1")


def test_sessions_do_not_share_uploads(home):
    a = ingest_zip(make_zip(good_entries()), "shapes", session="alice")
    b = ingest_zip(make_zip(good_entries()), "shapes", session="bob")
    assert a["path"] != b["path"]


_segment = st.one_of(st.sampled_from(["..", ".", "a", "b", "C:", "", "~", "\\\\srv"]),
                     st.text(alphabet="ab._-:", min_size=1, max_size=5))
_name = st.builds(lambda parts, sep, lead: lead + sep.join(parts), st.lists(_segment, min_size=1, max_size=5),
                  st.sampled_from(["/", "\\"]), st.sampled_from(["", "/", "\\", "C:\\"]))
_names = st.lists(_name, min_size=1, max_size=4)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_names)
def test_no_member_name_lands_outside_the_target_folder(home, names):
    outside_before = set(os.listdir(home))
    entries = good_entries()
    for n in names:
        entries[n] = b"not an image"
    try:
        ingest_zip(make_zip(entries), "prop", session="p")
    except ConfigError:
        pass
    assert set(os.listdir(home)) <= outside_before | {"uploads", "cache"}
    root = (home / "uploads").resolve()
    for dirpath, _, files in os.walk(home / "uploads"):
        for f in files:
            assert str((os.path.join(dirpath, f))).startswith(str(root))


def test_a_file_and_a_folder_of_the_same_name_is_a_message(home):
    with pytest.raises(ConfigError, match="same name"):  # "circle" is a file and a folder
        ingest_zip(make_zip({"circle": b"x", **good_entries(wrapper="")}), "clash", session="s1")
    assert not list((home / "uploads" / "s1").glob("clash*"))
