"""One gate for every door a session names a domain through: the same refusal for every name it may
not use, and nothing read from the disk for that name before the refusal (issue 18, item 1)."""
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import isolated_home, named_session as sess
from tl_core import RunConfig
from tl_core.app import api
from tl_core.base.errors import TLError

TINY = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "embedding": "none"}


def image_tree(root: Path, classes=("cat", "dog"), n=6) -> Path:
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((12, 12, 3), (7 * i + k) % 256, np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A classroom server: allowed root with a class folder, a secret folder beside it, and Bob's upload."""
    home = isolated_home(tmp_path / "home")
    monkeypatch.setenv("TL_HOME", str(home))
    root = tmp_path / "class_data"
    image_tree(root / "photos")
    secret = image_tree(tmp_path / "secret" / "exam")
    monkeypatch.setenv("TL_FOLDER_ROOTS", str(root))
    bob = sess("bob")
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in sorted(secret.rglob("*.png")):
            z.write(f, f"bobs/{f.parent.name}/{f.name}")
    up = api.ingest_zip(buf.getvalue(), "bobs", bob)
    return {"home": home, "root": root, "secret": secret, "bob": bob, "bob_upload": up["domain"]}


def refused_names(w) -> dict[str, str]:
    root, home = w["root"], w["home"]
    return {
        "outside the roots, existing": f"folder:{w['secret']}",
        "outside, via ..": f"folder:{root}/../secret/exam",
        "the whole disk": "folder:/",
        "inside the roots, missing": f"folder:{root}/nope",
        "nowhere": "folder:/no/such/dir",
        "the app's own uploads": f"folder:{home}/uploads",
        "outside, shifted": f"folder:{w['secret']}+rotate:2",
        "another session's upload": w["bob_upload"],
        "another session's missing upload": f"upload:{w['bob'].owner}/nothing",
        "malformed upload": "upload:../../etc",
        "unknown built-in": "nosuchdomain",
        "unknown shift": "mnist+bogus:3",
        "empty": "",
    }


def cfg_with(source: str) -> dict:
    return RunConfig().replace(data={"source": source, "target": "uci_digits", "max_per_domain": 100},
                               method={"name": "source_only", "params": {}}, train=TINY).to_dict()


def spec_with(source: str) -> dict:
    return {"source": source, "target": "uci_digits", "seeds": [0, 1],
            "strategies": [{"label": "DANN", "method": "dann"}], "base": {"train": TINY}}


def _raises(fn) -> str:
    try:
        fn()
    except TLError as e:
        return str(e)
    return "(accepted)"


# every door that takes a domain name from a session; each returns the refusal text it shows
DOORS = {
    "Data page preview": lambda s, n: _raises(lambda: api.preview_mosaic(n, s)),
    "Data page shift preview": lambda s, n: _raises(lambda: api.shift_preview(n, "rotate", 2, s)),
    "Data page label space": lambda s, n: api.label_space(n, "uci_digits", s)[1],
    "Strategy/Train validation": lambda s, n: api.validate(cfg_with(n), s)[1],
    "Train submit": lambda s, n: _raises(lambda: api.submit(cfg_with(n), s)),
    "Experiments link": lambda s, n: api.experiment_from_query({"source": n, "target": "uci_digits",
                                                           "methods": "dann", "seeds": "0,1"}, s)[1],
    "Experiments plan": lambda s, n: api.plan_experiment(spec_with(n), s)["why"],
    "Experiments launch": lambda s, n: _raises(lambda: api.launch_experiment(spec_with(n), s)),
}


@pytest.mark.parametrize("door", list(DOORS))
def test_every_door_refuses_every_name_a_session_may_not_use_with_one_text_and_lists_nothing(world, door,
                                                                                            monkeypatch):
    alice = sess("alice")
    names = refused_names(world)
    expected = api.domain_refusal_text(alice)
    listed = []
    real_scandir, real_listdir, real_iterdir = os.scandir, os.listdir, Path.iterdir

    def spy(real):
        def f(*a, **k):
            listed.append(str(a[0]) if a else ".")
            return real(*a, **k)
        return f

    monkeypatch.setattr(os, "scandir", spy(real_scandir))
    monkeypatch.setattr(os, "listdir", spy(real_listdir))
    monkeypatch.setattr(Path, "iterdir", spy(real_iterdir))
    texts = {}
    if door == "Experiments link":
        names.pop("empty")  # a link without a source says so: it names nothing to refuse
    for what, name in names.items():
        listed.clear()
        texts[what] = DOORS[door](alice, name)
        assert not listed, f"{door} listed {listed[:3]} for {what} before refusing it"
    assert set(texts.values()) == {expected}, {k: v for k, v in texts.items() if v != expected}


def test_add_folder_refuses_every_path_outside_the_roots_with_the_same_text(world):
    alice = sess("alice")
    expected = api.domain_refusal_text(alice)
    for what, name in refused_names(world).items():
        if name.startswith("folder:") and "+" not in name:
            assert _raises(lambda: api.add_folder(name[len("folder:"):], alice)) == expected, what


def test_an_allowed_folder_is_listed_once_however_many_runs_a_grid_has(world, monkeypatch):
    """A link with several strategies x seeds on a folder reads that folder once, not once per run."""
    from tl_core.data.domains.folder import clear_scan_cache

    alice = sess("alice")
    photos = world["root"] / "photos"
    name = f"folder:{photos}"
    clear_scan_cache()
    listed = []
    real = os.scandir

    def spy(*a, **k):
        listed.append(os.path.realpath(str(a[0])))
        return real(*a, **k)

    monkeypatch.setattr(os, "scandir", spy)
    spec = {"source": name, "target": name, "seeds": [0, 1, 2],
            "strategies": [{"label": m, "method": m} for m in ("dann", "coral", "mmd")], "base": {"train": TINY}}
    plan = api.plan_experiment(spec, alice)
    assert plan["why"] == "" and plan["runs"] == 12
    under = [p for p in listed if p.startswith(str(photos.resolve()))]
    assert under and len(under) == len(set(under)), sorted(under)  # every folder of the tree listed once


def test_a_scan_is_bounded_in_the_entries_it_visits(tmp_path, monkeypatch):
    from tl_core.data.domains import folder

    image_tree(tmp_path / "big", n=30)
    monkeypatch.setattr(folder, "MAX_SCAN_ENTRIES", 40)
    folder.clear_scan_cache()
    with pytest.raises(TLError, match="more than 40 files"):
        folder.scan_folder(tmp_path / "big")


def test_the_name_grammar_knows_the_same_shifts_as_the_shift_catalogue():
    from tl_core.data.domains import SHIFTS
    from tl_core.data.domains.names import SHIFT_KINDS, parse

    assert set(SHIFT_KINDS) == set(SHIFTS)
    n = parse("folder:/a+b/c+rotate:2+noise:1")
    assert (n.kind, n.path, n.shifts) == ("folder", "/a+b/c", (("rotate", 2), ("noise", 1)))
    assert parse("mnist+blur").shifts == (("blur", 3),)
