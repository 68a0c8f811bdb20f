
import pytest
import torch

from conftest import PACS, needs_mnist, needs_pacs, needs_usps
from tl_core.data.domains import (
    SHIFTS, check_label_spaces, clear_memory_cache, get_domain, list_domains, register_folder
)
from tl_core.base.errors import ConfigError, DataUnavailable
from tl_core.base.inputs import InputSpec, adapt


def _check(data, n_classes, channels):
    assert len(data.classes) == n_classes
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert x.dtype == torch.uint8 and x.ndim == 4 and x.shape[1] == channels
        assert len(x) == len(y) > 0
        assert int(y.min()) >= 0 and int(y.max()) < n_classes
    # every class present in both splits
    assert set(data.y_train.tolist()) == set(range(n_classes)) == set(data.y_test.tolist())


@needs_mnist
def test_mnist():
    d = get_domain("mnist").load()
    _check(d, 10, 1)
    assert (len(d.x_train), len(d.x_test), d.size) == (60000, 10000, (28, 28))


@needs_usps
def test_usps():
    d = get_domain("usps").load()
    _check(d, 10, 1)
    assert (len(d.x_train), len(d.x_test), d.size) == (7291, 2007, (16, 16))


def test_uci_digits():
    d = get_domain("uci_digits").load()
    _check(d, 10, 1)
    assert len(d.x_train) + len(d.x_test) == 1797 and d.size == (8, 8)
    assert int(d.x_train.max()) == 255


def test_syndigits_is_deterministic_and_varied():
    d = get_domain("syndigits").load()
    _check(d, 10, 3)
    assert (len(d.x_train), len(d.x_test)) == (10000, 2000)
    from tl_core.data.domains.render import render_digits

    a, ya = render_digits(40, seed=5)
    b, yb = render_digits(40, seed=5)
    c, _ = render_digits(40, seed=6)
    assert (a == b).all() and (ya == yb).all() and not (a == c).all()
    # varied: backgrounds differ between images
    assert d.x_train[:200, :, 0, 0].float().std() > 30


@needs_mnist
def test_mnistm_blends_mnist_over_colour_photos():
    d = get_domain("mnistm").load()
    m = get_domain("mnist").load()
    _check(d, 10, 3)
    assert torch.equal(d.y_train, m.y_train)
    assert (d.x_train[:100, 0].float() - d.x_train[:100, 1].float()).abs().mean() > 5  # really colour


def test_svhn_missing_offline_names_folder_and_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TL_OFFLINE", "1")
    clear_memory_cache()
    with pytest.raises(DataUnavailable) as e:
        get_domain("svhn").load()
    msg = str(e.value)
    assert str(tmp_path) in msg and "train_32x32.mat" in msg and "test_32x32.mat" in msg


@needs_pacs
def test_image_folder_pacs():
    dom = register_folder(PACS / "photo", name="pacs_photo_test")
    d = dom.load()
    assert d.classes == ["dog", "elephant", "giraffe", "guitar", "horse", "house", "person"]
    _check(d, 7, 3)
    assert len(d.x_train) + len(d.x_test) == 350 and d.size == (224, 224)
    assert get_domain("folder:" + str(PACS / "sketch")).classes == d.classes


def test_second_load_comes_from_the_disk_cache(monkeypatch):
    first = get_domain("uci_digits").load()
    clear_memory_cache()
    dom = get_domain("uci_digits")

    def no_decode():
        raise AssertionError("decoded again instead of reading the disk cache")

    monkeypatch.setattr(dom, "_decode", no_decode)
    again = dom.load()
    assert torch.equal(again.x_train, first.x_train) and again.classes == first.classes


@pytest.mark.parametrize("shift", sorted(SHIFTS))
def test_shifted_variants(shift):
    base = get_domain("uci_digits").load()
    dom = get_domain(f"uci_digits+{shift}:5")
    d = dom.load()
    assert d.classes == base.classes and torch.equal(d.y_test, base.y_test)
    assert d.x_train.shape[0] == base.x_train.shape[0]
    assert d.channels == (3 if shift == "colour" else 1)
    diff = (d.x_train.float() - base.x_train.float().expand_as(d.x_train)).abs().mean()
    assert diff > 1.0, f"{shift} at severity 5 changed nothing"
    again = get_domain(f"uci_digits+{shift}:5")._decode()
    assert torch.equal(again.x_train, d.x_train)  # deterministic


def test_bad_shift_and_unknown_domain_are_explained():
    with pytest.raises(ConfigError, match="Known shifts"):
        get_domain("uci_digits+wobble:2")
    with pytest.raises(ConfigError, match="from 1 to 5"):
        get_domain("uci_digits+rotate:9")
    with pytest.raises(ConfigError, match="Known domains: .*mnist"):
        get_domain("mnits")


@needs_pacs
def test_label_space_mismatch_lists_missing_classes():
    with pytest.raises(ConfigError) as e:
        check_label_spaces(get_domain("uci_digits"), get_domain("folder:" + str(PACS / "photo")))
    msg = str(e.value)
    assert "Missing in the target: 0, 1" in msg and "Missing in the source: dog, elephant" in msg


def test_every_registered_domain_describes_itself():
    for name in list_domains():
        info = get_domain(name).info()
        assert info["description"] and len(info["classes"]) >= 2


@pytest.mark.parametrize("src_ch,dst_ch", [(1, 3), (3, 1), (1, 1), (3, 3)])
def test_inputs_are_adapted_to_the_backbone(src_ch, dst_ch):
    x = torch.randint(0, 256, (4, src_ch, 16, 16), dtype=torch.uint8)
    spec = InputSpec(28, dst_ch, (0.5,) * dst_ch, (0.5,) * dst_ch)
    y = adapt(x, spec)
    assert y.shape == (4, dst_ch, 28, 28) and y.dtype == torch.float32
    assert -1.001 <= float(y.min()) and float(y.max()) <= 1.001
