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

from tl_core.policy.access import session_from_token
from tl_core.app.api import ingest_zip
from tl_core.base.errors import ConfigError


def sess(name: str):
    """A browser session whose cookie token is derived from `name` (stable within a test)."""
    return session_from_token((name + "-token-" * 8)[:40])[0]


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


def leftovers(home) -> list:
    """Files left in the upload area (a refused or failed archive must leave none)."""
    return [p for p in (home / "uploads").rglob("*") if p.is_file()] if (home / "uploads").exists() else []


def good_entries(wrapper="shapes/") -> dict[str, bytes]:
    return {f"{wrapper}{c}/{i}.png": png(i + 10 * k) for k, c in enumerate(("circle", "square")) for i in range(6)}


@pytest.fixture(autouse=True)
def _in_the_test_home(home):
    """Every test here runs in the shared test home (tests/conftest.py), asked for or not."""


def test_a_good_zip_becomes_a_domain_with_junk_ignored(home):
    entries = good_entries()
    entries.update({"__MACOSX/shapes/._1.png": b"junk", "shapes/circle/.DS_Store": b"x", "shapes/Thumbs.db": b"x"})
    res = ingest_zip(make_zip(entries), "shapes", session=sess("s1"))
    assert res["classes"] == ["circle", "square"]  # the wrapper folder was unwrapped
    assert len(res["skipped"]) == 3
    assert res["domain"] == f"upload:{sess('s1').owner}/shapes"
    assert (home / "uploads" / sess("s1").owner / "domains" / "shapes" / "circle").is_dir()
    from tl_core.data.domains import get_domain

    d = get_domain(res["domain"]).load()  # resolvable by name from any process
    assert len(d.x_train) + len(d.x_test) == 12


@pytest.mark.parametrize("bad", ["../evil.png", "shapes/../../evil.png", "/etc/evil.png", "C:/evil.png",
                                 "\\\\server\\share\\evil.png"])
def test_path_traversal_is_refused_and_nothing_is_written(home, bad):
    entries = good_entries()
    entries[bad] = png()
    with pytest.raises(ConfigError, match="outside its folder"):
        ingest_zip(make_zip(entries), "shapes", session=sess("s1"))
    assert not (home / "uploads" / "s1" / "shapes").exists()
    assert not (home.parent / "evil.png").exists()


def test_links_are_refused(home):
    with pytest.raises(ConfigError, match="link"):
        ingest_zip(make_zip(good_entries(), links={"shapes/circle/x.png": "/etc/passwd"}), "shapes", session=sess("s1"))


def test_zip_bomb_ratio_is_refused_before_extraction(home):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/x.png", b"\0" * 5_000_000)
        z.writestr("b/y.png", b"\0" * 5_000_000)
    with pytest.raises(ConfigError, match="zip bomb"):
        ingest_zip(buf.getvalue(), "bomb", session=sess("s1"))
    assert not (home / "uploads" / "s1" / "bomb").exists()


def test_not_a_zip_and_single_class_get_messages(home):
    with pytest.raises(ConfigError, match="not a zip"):
        ingest_zip(b"hello", "x", session=sess("s1"))
    one = {f"only/cat/{i}.png": png(i) for i in range(5)}
    with pytest.raises(ConfigError, match="at least 2 classes are needed.*one sub-folder per class"):
        ingest_zip(make_zip(one), "only", session=sess("s1"))


def test_sessions_do_not_share_uploads(home):
    a = ingest_zip(make_zip(good_entries()), "shapes", session=sess("alice"))
    b = ingest_zip(make_zip(good_entries()), "shapes", session=sess("bob"))
    assert a["domain"] != b["domain"]


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
        ingest_zip(make_zip(entries), "prop", session=sess("p"))
    except ConfigError:
        pass
    assert set(os.listdir(home)) <= outside_before | {"uploads", "cache", "state"}  # state: the app's own notes
    root = (home / "uploads").resolve()
    for dirpath, _, files in os.walk(home / "uploads"):
        for f in files:
            assert str((os.path.join(dirpath, f))).startswith(str(root))


def test_a_file_and_a_folder_of_the_same_name_is_a_message(home):
    with pytest.raises(ConfigError, match="same name"):  # "circle" is a file and a folder
        ingest_zip(make_zip({"circle.png": png(1), "circle.png/2.png": png(2), **good_entries(wrapper="")}), "clash",
                   session=sess("s1"))
    assert not list((home / "uploads").rglob("clash*"))
    assert not [p for p in (home / "uploads").rglob("*") if p.is_file()]  # nothing half-unpacked is left


# -- issue 6: caps, layouts, class counts and names ---------------------------------------

def test_upload_limit_is_set_in_the_repos_streamlit_config():
    import tomllib

    from conftest import ROOT

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert 1 <= cfg["server"]["maxUploadSize"] <= 2048  # MB; the app's uploads stop there


def test_more_than_50000_members_is_refused_before_extraction(home):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(50_001):
            z.writestr(f"a/{i}.png", b"")
    with pytest.raises(ConfigError, match="50,001 entries; at most 50,000"):
        ingest_zip(buf.getvalue(), "many", session=sess("s1"))
    assert not (home / "uploads").exists() or not any((home / "uploads").rglob("*.png"))


def test_more_than_2_gb_claimed_is_refused_before_extraction(home):
    data = bytearray(make_zip(good_entries()))
    # claim 3 GB for the first member in the central directory (headers can say anything)
    cd = data.find(b"PK\x01\x02")
    data[cd + 24:cd + 28] = (3 * 1024**3).to_bytes(4, "little")
    with pytest.raises(ConfigError, match="2 GB"):
        ingest_zip(bytes(data), "huge", session=sess("s1"))
    assert leftovers(home) == []


def test_headers_that_understate_the_size_do_not_get_past_the_written_byte_count(home, monkeypatch):
    import tl_core.policy.uploads as uploads
    from tl_core.base.errors import TLError

    monkeypatch.setattr(uploads, "MAX_UNCOMPRESSED", 20_000)
    entries = {f"big/{c}/{i}.png": png(i, size=40) for c in ("a", "b") for i in range(4)}  # ~40 kB in all
    data = bytearray(make_zip(entries))
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) >= 0:  # every central header claims 100 bytes
        data[pos + 24:pos + 28] = (100).to_bytes(4, "little")
        pos += 4
    with pytest.raises(TLError):  # zipfile notices the lie, or the byte count does
        ingest_zip(bytes(data), "liar", session=sess("s1"))
    assert leftovers(home) == []


def test_a_train_val_split_gets_a_message_with_the_expected_tree(home):
    entries = {f"ds/{s}/{c}/{i}.png": png(i) for s in ("train", "val") for c in ("a", "b") for i in range(3)}
    with pytest.raises(ConfigError, match=r"split into train, val.*one sub-folder per class"):
        ingest_zip(make_zip(entries), "ds", session=sess("s1"))


def test_flat_images_get_a_message_with_the_expected_tree(home):
    with pytest.raises(ConfigError, match=r"no class folders.*one sub-folder per class"):
        ingest_zip(make_zip({f"{i}.png": png(i) for i in range(6)}), "flat", session=sess("s1"))


def test_a_class_with_one_image_is_refused_and_fewer_than_five_warned(home):
    entries = good_entries()
    entries["shapes/triangle/0.png"] = png(99)
    with pytest.raises(ConfigError, match="'triangle' \\(1\\).*at least 2"):
        ingest_zip(make_zip(entries), "shapes", session=sess("s1"))
    entries["shapes/triangle/1.png"] = png(98)
    entries["shapes/triangle/2.png"] = png(97)
    res = ingest_zip(make_zip(entries), "shapes", session=sess("s1"))
    assert res["classes"] == ["circle", "square", "triangle"]
    assert len(res["warnings"]) == 1 and "'triangle' has only 3 images" in res["warnings"][0]


def test_class_names_differing_only_by_case_or_spacing(home):
    from tl_core.data.domains import check_label_spaces, get_domain

    entries = {f"x/{c}/{i}.png": png(i) for c in ("Cat", "cat ") for i in range(3)}
    with pytest.raises(ConfigError, match="look the same"):
        ingest_zip(make_zip(entries), "x", session=sess("s1"))
    a = ingest_zip(make_zip({f"a/{c}/{i}.png": png(i) for c in ("Cat", "Dog") for i in range(5)}), "a", sess("s1"))
    b = ingest_zip(make_zip({f"b/{c}/{i}.png": png(i) for c in ("cat", "dog") for i in range(5)}), "b", sess("s1"))
    with pytest.raises(ConfigError, match="Missing in the target: Cat, Dog.*differ only by case or spacing"):
        check_label_spaces(get_domain(a["domain"]), get_domain(b["domain"]))
    same = ingest_zip(make_zip({f"c/{c}/{i}.png": png(i) for c in ("Cat", "Dog") for i in range(5)}), "c", sess("s1"))
    check_label_spaces(get_domain(a["domain"]), get_domain(same["domain"]))  # identical names: accepted


def test_cli_ingest_reports_accepted_ignored_and_warned_and_refuses_with_the_apps_message(home, tmp_path):
    import json
    import subprocess
    import sys

    from conftest import ROOT

    entries = good_entries()
    entries.update({"shapes/triangle/0.png": png(1), "shapes/triangle/1.png": png(2), "__MACOSX/x": b"j"})
    z = tmp_path / "shapes.zip"
    z.write_bytes(make_zip(entries))
    env = {**os.environ, "TL_HOME": str(home)}
    p = subprocess.run([sys.executable, "-m", "tl_core", "ingest", str(z), "--name", "shapes"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "accepted 14 images in 3 classes" in p.stdout and "ignored (not an image, or a system file): __MACOSX/x" in p.stdout
    assert "warning: class 'triangle' has only 2 images" in p.stdout
    bad = tmp_path / "bad.zip"
    bad.write_bytes(make_zip({**good_entries(), "../evil.png": png()}))
    p = subprocess.run([sys.executable, "-m", "tl_core", "ingest", str(bad), "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "points outside its folder" in p.stderr and "Traceback" not in p.stderr
    ok = subprocess.run([sys.executable, "-m", "tl_core", "ingest", str(z), "--json"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120)
    assert json.loads(ok.stdout)["warnings"]


@pytest.mark.parametrize("wrapper", ["d/", "e/", ""])
def test_a_refusal_names_the_dataset_and_is_never_garbled_by_the_wrapper_folders_name(home, wrapper):
    """Issue 29: a wrapper folder named with one letter (or the unpack area's random name) once turned
    "Expected" into "Expecte<name>"; the refusal now names the dataset as the user named it."""
    one_class = {f"{wrapper}cat/{i}.png": png(i) for i in range(4)}
    with pytest.raises(ConfigError) as e:
        ingest_zip(make_zip(one_class), "cls1", sess("w"))
    text = str(e.value)
    assert "Expected one sub-folder per class, e.g.  cls1/cat/1.jpg" in text and text.startswith("cls1 ")
    assert text.startswith("cls1 has 1 class folder(s)" if wrapper else "cls1 holds 4 images")  # "cat" unwrapped
    flat = {f"{wrapper}{i}.png": png(i) for i in range(4)}
    with pytest.raises(ConfigError) as e:
        ingest_zip(make_zip(flat), "f7TGA", sess("w"))
    assert str(e.value).startswith("f7TGA holds 4 images but no class folders") and "Expected one" in str(e.value)
