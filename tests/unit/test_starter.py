"""The offline starter pack: real MNIST and USPS subsets in assets/starter, used (and said so) when
the full datasets are absent; nothing changes when they are present."""
import hashlib
import re

import numpy as np
import pytest
import torch

from conftest import ROOT, isolated_home, needs_mnist, needs_usps
from tl_core.data.domains import clear_memory_cache, get_domain
from tl_core.planning.validation import validate

PACK = ROOT / "assets" / "starter"


@pytest.fixture
def offline_empty(tmp_path, monkeypatch):
    (tmp_path / "nodata").mkdir()
    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path / "nodata"))
    monkeypatch.setenv("TL_OFFLINE", "1")
    monkeypatch.setenv("TL_HOME", str(tmp_path / "home"))
    clear_memory_cache()
    yield
    clear_memory_cache()


def test_the_readme_names_each_files_sha256():
    text = (PACK / "README.md").read_text()
    for f in ("mnist.npz", "usps.npz"):
        digest = hashlib.sha256((PACK / f).read_bytes()).hexdigest()
        assert re.search(rf"`{f}`.*`{digest}`", text), f
    assert "CC BY-SA 3.0" in text and "Hull" in text and "build.py" in text


def test_without_the_full_data_the_digits_come_from_the_pack_and_say_so(offline_empty):
    m, u = get_domain("mnist"), get_domain("usps")
    for dom, n_train, n_test, size in ((m, 10_000, 10_000, (28, 28)), (u, 7_291, 2_007, (16, 16))):
        info = dom.info()
        assert info["available"] and info["starter_pack"] and "(starter pack)" in info["label"]
        assert "TL_DOWNLOAD=1" in info["description"]
        d = dom.load()
        assert (len(d.x_train), len(d.x_test), d.size, d.channels) == (n_train, n_test, size, 1)
        assert d.x_train.dtype == torch.uint8 and sorted(d.classes) == [str(i) for i in range(10)]
        assert torch.bincount(d.y_test, minlength=10).min() > 100  # every class is there
    assert torch.bincount(m.load().y_train).tolist() == [1000] * 10  # stratified
    # what is derived from MNIST follows it
    assert get_domain("mnistm").info()["starter_pack"]
    assert get_domain("mnistm").load().x_train.shape == (10_000, 3, 28, 28)
    assert len(get_domain("mnist+rotate:2").load().x_test) == 10_000
    # the command line says so when a run uses it
    from tl_core import RunConfig
    from tl_core.cli.common import starter_notes

    notes = starter_notes(validate(RunConfig().replace(data={"source": "mnist", "target": "usps"})))
    assert len(notes) == 2 and all("starter pack" in n for n in notes)


@needs_mnist
@needs_usps
def test_with_the_full_data_nothing_changes_and_the_pack_is_the_same_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_HOME", str(isolated_home(tmp_path / "home")))
    clear_memory_cache()
    for name, n_train in (("mnist", 60_000), ("usps", 7_291)):
        dom = get_domain(name)
        assert not dom.info().get("starter_pack") and "starter" not in dom.cache_key()
        full = dom.load()
        assert len(full.x_train) == n_train
        with np.load(PACK / f"{name}.npz", allow_pickle=False) as z:
            assert np.array_equal(z["x_test"], full.x_test.numpy()[:, 0])  # byte for byte the real test split
            assert np.array_equal(z["y_test"], full.y_test.numpy())
            # every pack training image is one of the real training images, with its label
            x = full.x_train.numpy()[:, 0].reshape(n_train, -1)
            index = {row.tobytes(): i for i, row in enumerate(x)}
            hits = [index.get(img.tobytes()) for img in z["x_train"][:200]]
            assert None not in hits
            assert np.array_equal(full.y_train.numpy()[hits], z["y_train"][:200])
