"""Uploaded models: safetensors + model.json only; pickles are never opened; damaged or mismatched
files are refused with the reason, and nothing is written on refusal."""
import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save

from tl_core.app import api
from tl_core.policy.access import session_from_token
from tl_core.models.checkpoint import Checkpointer
from tl_core.base.errors import ConfigError
from tl_core.training.trainer import Trainer
from conftest import tiny_config


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A checkpoint folder of a tiny trained model: what a user downloads from the Compare page."""
    cfg = tiny_config("source_only", images=200, epochs=1, steps_per_epoch=5)
    d = tmp_path_factory.mktemp("run")
    ck = Checkpointer(d)
    Trainer(cfg, checkpointer=ck).fit()
    folder = ck.path("last")
    return (folder / "model.safetensors").read_bytes(), (folder / "model.json").read_bytes()


def sess(name: str):
    return session_from_token((name + "-token-" * 8)[:40])[0]


def models_written(home):
    return [p for p in (home / "uploads").rglob("*") if p.is_file()] if (home / "uploads").exists() else []


def test_a_good_upload_predicts(home, exported):
    w, meta = exported
    res = api.import_model(w, meta, "mine", session=sess("s1"))
    assert res["model"].startswith("upload:") and len(res["classes"]) == 10
    img = np.zeros((3, 28, 28), np.uint8)
    out = api.predict(sess("s1"), res["model"], [img], top_k=3)
    from tl_core.models.checkpoint import Predictor
    from tl_core.base.inputs import adapt

    stored = list((home / "uploads" / sess("s1").owner / "models").glob("mine--*"))
    assert len(stored) == 1
    p = Predictor(stored[0])  # the stored copy, read back independently
    with torch.no_grad():
        ref = p.model(adapt(torch.from_numpy(img)[None], p.spec)).softmax(1)
    assert out[0]["probs"] == pytest.approx(ref.topk(3).values[0].tolist(), rel=1e-5)


class WritesAFile:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_that_would_write_a_file_is_refused_and_writes_nothing(home, exported, tmp_path):
    target = tmp_path / "pwned.txt"
    payload = pickle.dumps({"state": WritesAFile(str(target))}, protocol=4)
    with pytest.raises(ConfigError, match="pickle"):
        api.import_model(payload, exported[1], "evil", session=sess("s1"))
    assert not target.exists() and models_written(home) == []
    buf = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, buf)  # torch.save's zip format is a pickle too
    with pytest.raises(ConfigError, match="pickle"):
        api.import_model(buf.read_bytes(), exported[1], "evil", session=sess("s1"))


def test_truncated_and_lying_headers_are_refused(home, exported):
    w, meta = exported
    with pytest.raises(ConfigError, match="truncated"):
        api.import_model(w[: len(w) // 2], meta, "half", session=sess("s1"))
    with pytest.raises(ConfigError, match="truncated"):
        api.import_model(w[:5], meta, "tiny", session=sess("s1"))
    huge = (2**40).to_bytes(8, "little") + w[8:]
    with pytest.raises(ConfigError, match="header claims"):
        api.import_model(huge, meta, "huge", session=sess("s1"))
    n = int.from_bytes(w[:8], "little")
    header = json.loads(w[8:8 + n])
    key = next(k for k in header if k != "__metadata__")
    header[key]["shape"] = [10**6, 10**6]  # claims far more data than the file holds
    h = json.dumps(header).encode()
    with pytest.raises(ConfigError, match="does not fit"):
        api.import_model(len(h).to_bytes(8, "little") + h + w[8 + n:], meta, "lie", session=sess("s1"))
    assert models_written(home) == []


def test_wrong_keys_or_shapes_or_metadata_are_refused_with_the_reason(home, exported):
    w, meta = exported
    with pytest.raises(ConfigError, match="missing backbone.stages.conv1.0.bias.*unexpected x"):
        api.import_model(save({"x": torch.zeros(3)}), meta, "keys", session=sess("s1"))
    from safetensors.torch import load

    state = load(w)
    state["head.weight"] = torch.zeros(3, state["head.weight"].shape[1])
    with pytest.raises(ConfigError, match="head.weight is \\(3, 500\\), expected \\(10, 500\\)"):
        api.import_model(save(state), meta, "shapes", session=sess("s1"))
    with pytest.raises(ConfigError, match="model.json"):
        api.import_model(w, b"not json", "meta", session=sess("s1"))
    with pytest.raises(ConfigError, match="Unknown backbone"):
        api.import_model(w, json.dumps({**json.loads(meta), "backbone": "gpt"}).encode(), "bb", session=sess("s1"))
    assert models_written(home) == []


def test_no_pickle_is_loaded_anywhere_on_the_upload_path(home, exported, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    res = api.import_model(*exported, "again", session=sess("s2"))
    api.predict(sess("s2"), res["model"], [np.zeros((3, 28, 28), np.uint8)])


def test_the_checkpoint_zip_from_the_compare_page_imports_and_a_torch_save_zip_does_not(home, exported, tmp_path):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model.safetensors", exported[0])
        z.writestr("model.json", exported[1])
        z.writestr("config.json", "{}")
    w, meta = api.unpack_model_zip(buf.getvalue())
    assert (w, meta) == exported
    pt = tmp_path / "m.pt"
    torch.save({"w": torch.zeros(2)}, pt)
    with pytest.raises(ConfigError, match="pickle"):
        api.unpack_model_zip(pt.read_bytes())
    with pytest.raises(ConfigError, match="must hold model.safetensors"):
        z2 = io.BytesIO()
        with zipfile.ZipFile(z2, "w") as z:
            z.writestr("x.txt", "x")
        api.unpack_model_zip(z2.getvalue())


def test_an_uploaded_model_is_listed_after_a_reload_and_only_its_owner_can_delete_it(home, exported):
    """Issue 29, item 5: a model file a session added is listed from its upload area (not only the page's
    memory), can be deleted by its owner (freeing its quota) and by no one else."""
    from tl_core.policy import access

    w, meta = exported
    me, other = sess("owner"), sess("stranger")
    ref = api.import_model(w, meta, "mine", session=me)["model"]
    assert list(api.my_models(me)) == [ref] and api.my_models(other) == {}
    used = access.usage_bytes(access.session_dir(me))
    assert used >= len(w)
    with pytest.raises(ConfigError):
        api.delete_my_model(other, ref)  # another session names it: not theirs, nothing happens
    assert list(api.my_models(me)) == [ref]
    for hostile in ("upload:../../etc", "upload:" + "a" * 200, "/etc/passwd", ""):
        with pytest.raises(ConfigError):
            api.delete_my_model(me, hostile)
    api.delete_my_model(me, ref)
    assert api.my_models(me) == {} and access.usage_bytes(access.session_dir(me)) < used
    with pytest.raises(ConfigError):
        api.predict(me, ref, [np.zeros((3, 28, 28), np.uint8)])
