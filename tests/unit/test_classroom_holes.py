"""The second classroom audit (issue 18): memory and disk follow decoded pixels, only accepted formats
are opened, uploads behave as their owner expects, names are shown as written, ids tell nothing."""
import io
import json
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import named_session as sess, tiny_config
from tl_core.app import api
from tl_core.base.errors import ConfigError, QuotaExceeded, TLError


def png(v=0, size=10, mode="RGB") -> bytes:
    b = io.BytesIO()
    arr = np.full((size, size, len(mode)) if len(mode) > 1 else (size, size), v % 256, np.uint8)
    Image.fromarray(arr, mode=mode).save(b, "PNG")
    return b.getvalue()


def zipped(entries: dict) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in entries.items():
            z.writestr(n, d)
    return b.getvalue()


def tiny_zip(n_per_class=300, classes="ab", side=1) -> bytes:
    return zipped({f"t/{c}/{i}.png": png(i + k, side) for k, c in enumerate(classes) for i in range(n_per_class)})


# -- 2. memory and disk bounded by decoded pixels --------------------------------------------------

def test_a_dataset_of_tiny_images_stays_tiny_decoded_in_memory_and_on_disk(home):
    from tl_core.data.domains import get_domain

    s = sess("a")
    up = api.ingest_zip(tiny_zip(), "tiny", s)
    d = get_domain(up["domain"]).load()
    assert d.x_train.shape[1:] == (3, 1, 1)  # 1x1 images are kept at 1x1, not 224x224
    assert d.x_train.nbytes + d.x_test.nbytes == 600 * 3
    cache = get_domain(up["domain"]).cache_path()
    assert cache.stat().st_size < 100_000
    assert api.my_uploads(s)[0]["decoded_bytes"] == 600 * 3


def test_a_preview_decodes_only_the_images_it_shows(home, monkeypatch):
    from tl_core.data.domains import folder

    s = sess("a")
    up = api.ingest_zip(tiny_zip(n_per_class=200, side=4), "many", s)
    calls = []
    real = folder.load_image
    monkeypatch.setattr(folder, "load_image", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    p = api.preview_mosaic(up["domain"], s, per_class=6)
    assert len(calls) == 12 and p["n_train"] + p["n_test"] == 400
    from tl_core.data.domains import get_domain

    assert not get_domain(up["domain"]).cache_path().exists()  # the dataset was not decoded as a whole


@pytest.mark.parametrize("mode", ["F", "I;16", "RGBA", "LA", "P"])
def test_a_large_image_is_cut_and_resized_before_any_full_size_copy(tmp_path, mode):
    """No float, 16-bit-to-8-bit or alpha-composited copy of the full image is made: what numpy
    allocates stays a few small arrays whatever the input's size."""
    from tl_core.data.domains.folder import load_image

    side = 2000
    if mode == "F":
        im = Image.fromarray(np.random.default_rng(0).random((side, side), dtype=np.float32) * 1000, mode="F")
        path = tmp_path / "big.tif"
    elif mode == "I;16":
        im = Image.new("I;16", (side, side), 40000)
        path = tmp_path / "big.png"
    elif mode == "P":
        im = Image.new("P", (side, side), 3)
        im.info["transparency"] = 3
        path = tmp_path / "big.png"
    else:
        im = Image.new(mode, (side, side), (10, 20, 30, 128)[:len(mode)])
        path = tmp_path / "big.png"
    im.save(path, transparency=3) if mode == "P" else im.save(path)
    tracemalloc.start()
    try:
        out = load_image(path, 64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (3, 64, 64) and out.dtype == np.uint8
    assert peak < 2_000_000, f"{peak / 1e6:.1f} MB allocated for a {side}x{side} {mode} image"


def test_a_datasets_decoded_bytes_stay_within_its_quota(home, monkeypatch):
    from tl_core.data.domains import get_domain

    monkeypatch.setenv("TL_QUOTA_DOMAIN_DECODED_MB", "1")  # 1 MB for one dataset
    s = sess("a")
    up = api.ingest_zip(zipped({f"t/{c}/{i}.png": png(i, 224) for c in "ab" for i in range(10)}), "big", s)
    assert any("decoded-bytes quota" in w for w in up["warnings"])
    d = get_domain(up["domain"]).load()
    assert d.x_train.nbytes + d.x_test.nbytes <= 2**20 and d.size[0] < 224


def test_a_sessions_decoded_quota_refuses_an_upload_until_one_is_deleted(home, monkeypatch):
    monkeypatch.setenv("TL_QUOTA_DECODED_MB", "1")
    s = sess("a")
    big = zipped({f"t/{c}/{i}.png": png(i, 160) for c in "ab" for i in range(6)})  # 12 x 3 x 160^2 = 0.9 MB
    api.ingest_zip(big, "first", s)
    with pytest.raises(QuotaExceeded, match="Delete an upload"):
        api.ingest_zip(big, "second", s)
    api.delete_upload(s, "first")  # deleting one frees its quota
    api.ingest_zip(big, "second", s)
    assert [u["name"] for u in api.my_uploads(s)] == ["second"]
    with pytest.raises(ConfigError, match="no upload of that name"):
        api.delete_upload(sess("b"), "second")  # only its owner deletes it


def test_the_disk_cache_is_pruned_oldest_first_under_its_cap(home, monkeypatch):
    import os

    from tl_core.data.domains.base import prune_disk_cache

    folder = home / "cache" / "domains"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        p = folder / f"prune-test-{i}.safetensors"
        p.write_bytes(b"\0" * 600_000)
        os.utime(p, (1000 + i, 1000 + i))
    monkeypatch.setenv("TL_DOMAIN_DISK_CACHE_MB", "1")
    prune_disk_cache(folder, keep=folder / "prune-test-0.safetensors")
    left = sorted(p.name for p in folder.glob("prune-test-*"))
    assert left == ["prune-test-0.safetensors"]  # the newest kept is the one just written; the rest went oldest first
    for p in folder.glob("prune-test-*"):
        p.unlink()


# -- 5. the smaller holes ----------------------------------------------------------------------------

def test_only_accepted_formats_are_opened_whatever_the_extension_says(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    from tl_core.data.domains.folder import load_image

    opened = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: opened.append(1))
    f = tmp_path / "innocent.png"
    f.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ValueError, match="accepted format"):
        load_image(f, 32)
    assert not opened  # Ghostscript's door was never knocked on


def test_a_class_made_only_of_unreadable_files_is_refused_by_name(home):
    entries = {f"t/good/{i}.png": png(i) for i in range(5)}
    entries.update({f"t/broken/{i}.png": b"not an image at all" for i in range(5)})
    with pytest.raises(ConfigError, match="readable images in class 'broken'"):
        api.ingest_zip(zipped(entries), "t", sess("a"))
    assert api.my_uploads(sess("a")) == []


def test_a_refused_reupload_of_a_model_keeps_the_good_one(home):
    from safetensors.torch import save

    from tl_core.app.predict import import_model
    from tl_core.models.backbones import build_backbone
    from tl_core.base.inputs import InputSpec
    from tl_core.models.model import Classifier

    s = sess("a")
    model = Classifier(build_backbone("lenet", pretrained=False, input_size=28, in_channels=1), 2)
    meta = json.dumps({"backbone": "lenet", "classes": ["a", "b"], "num_classes": 2, "in_channels": 1,
                       "input_spec": InputSpec(28, 1, (0.5,), (0.5,)).to_dict()}).encode()
    weights = save({k: v.contiguous() for k, v in model.state_dict().items()})
    first = import_model(weights, meta, "mine", s)
    with pytest.raises(TLError):
        import_model(b"\0" * 100, meta, "mine", s)  # broken weights under the same name
    assert import_model(weights, meta, "mine", s) == first  # the good model is still there


def test_a_safetensors_shape_that_overflows_is_a_clear_refusal():
    from tl_core.models.checkpoint import check_safetensors

    header = json.dumps({"w": {"dtype": "F32", "shape": [2**40, 2**40, 2**40], "data_offsets": [0, 4]}}).encode()
    with pytest.raises(ConfigError, match="truncated or damaged"):
        check_safetensors(len(header).to_bytes(8, "little") + header + b"\0" * 4)


def test_two_uploads_of_one_name_at_once_leave_one_dataset_and_nothing_else(home):
    s = sess("a")
    errors = []

    def up(k):
        try:
            api.ingest_zip(zipped({f"t/{c}/{i}.png": png(i + k) for c in "ab" for i in range(5)}), "same", s)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=up, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    area = home / "uploads" / s.owner
    assert [p.name for p in (area / "domains").iterdir()] == ["same"]
    assert list((area / ".tmp").iterdir()) == []  # nothing left to count against the quota
    assert str(home) not in "".join(map(str, errors))


@pytest.mark.parametrize("bad", ["x/cat\nnip/0.png", "x/\u202edog/0.png"])
def test_names_are_shown_as_written_and_control_characters_refused(home, bad):
    entries = {f"x/plain/{i}.png": png(i) for i in range(3)}
    entries.update({bad.replace("0.png", f"{i}.png"): png(i) for i in range(3)})
    with pytest.raises(ConfigError) as e:
        api.ingest_zip(zipped(entries), "x", sess("a"))
    assert "\n" not in str(e.value) and "\u202e" not in str(e.value)  # nothing garbles the sentence
    assert "\\u" in str(e.value)


def test_a_clash_message_tells_the_two_names_apart(home):
    entries = {f"x/{c}/{i}.png": png(i) for c in ("caf\u00e9", "cafe\u0301") for i in range(3)}
    with pytest.raises(ConfigError, match="look the same") as e:
        api.ingest_zip(zipped(entries), "x", sess("a"))
    assert "'cafe\\u0301'" in str(e.value)


def test_duplicate_zip_members_are_refused(home):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for i in range(3):
            z.writestr(f"x/a/{i}.png", png(i))
            z.writestr(f"x/b/{i}.png", png(i))
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z.writestr("x/a/0.png", png(99))
    with pytest.raises(ConfigError, match="twice"):
        api.ingest_zip(b.getvalue(), "x", sess("a"))


def test_class_names_written_nfc_and_nfd_are_one_label_space(tmp_path, monkeypatch, home):
    for root, cafe in (("src", "caf\u00e9"), ("tgt", "cafe\u0301")):
        for c in (cafe, "tea"):
            (tmp_path / root / c).mkdir(parents=True)
            for i in range(5):
                (tmp_path / root / c / f"{i}.png").write_bytes(png(i))
    monkeypatch.setenv("TL_FOLDER_ROOTS", str(tmp_path))
    s = sess("a")
    ok, msg = api.label_space(f"folder:{tmp_path / 'src'}", f"folder:{tmp_path / 'tgt'}", s)
    assert ok, msg


def test_a_short_time_limit_reads_in_seconds():
    from tl_core.runs import duration_words, wall_limit_reason

    assert "10 s" in wall_limit_reason(10) and "0 min" not in wall_limit_reason(10)
    assert duration_words(90) == "1 min 30 s" and duration_words(1800) == "30 min"


def test_run_ids_say_nothing_about_other_sessions(home, monkeypatch):
    import re

    from tl_core import runs

    monkeypatch.setattr(runs.jobs, "schedule", lambda st=None: [])
    cfg = tiny_config("source_only", images=200, epochs=1, steps_per_epoch=2, batch_size=8)
    a = api.submit(cfg.to_dict(), sess("alice"))
    b = api.submit(cfg.to_dict(), sess("bob"))  # the same config, launched by a classmate
    assert re.match(r"^[0-9a-f]{8}-[0-9a-f]{6}$", a) and re.match(r"^[0-9a-f]{8}-[0-9a-f]{6}$", b)
    assert a != b and not b.startswith(a)


def test_the_weights_message_shows_no_server_path():
    from tl_core.models.backbones import backbone_info

    for name in ("efficientnet_lite0", "resnet18"):
        assert "/" not in backbone_info(name).weights_status()[1]
