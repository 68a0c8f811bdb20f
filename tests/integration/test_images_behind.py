"""The images behind every number (issue 33): a finished PACS folder run's confusion cells open exactly the
images they count, class rows match the matrix, a map point opens its image, a reused run shows the same, and
another session cannot fetch a private run's thumbnails."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import PACS, ROOT, module_home, named_session, needs_pacs

pytestmark = needs_pacs


def cli_train(*args: str) -> dict:
    p = subprocess.run([sys.executable, "-m", "tl_core", "train", *args, "--json", "--quiet"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


PACS_RUN = ("--source", f"folder:{PACS / 'photo'}", "--target", f"folder:{PACS / 'cartoon'}",
            "--method", "source_only", "--epochs", "2", "--steps", "15", "--batch-size", "16", "--embedding", "pca")


@pytest.fixture(scope="module")
def pacs_run(tmp_path_factory):
    """A finished LeNet run from PACS photos to cartoons (two server folders), trained from the command line."""
    with module_home(tmp_path_factory, "behind"):
        yield cli_train(*PACS_RUN)["run_id"]


def test_a_confusion_cell_opens_exactly_the_images_it_counts(pacs_run):
    from tl_core.app import api
    from tl_core.data import thumbs
    from tl_core.policy.access import CLI_SESSION
    from tl_core.runs import read_metrics

    rep = api.class_report(CLI_SESSION, pacs_run)
    history, _ = read_metrics(pacs_run)
    last = history[-1]
    assert rep["epoch"] == last["epoch"] == 2 and not rep["sampled"] and rep["images"]
    assert rep["matrix"] == last["target_confusion"]  # the same counts the run's metrics hold
    assert rep["classes"] == last["classes"] == sorted(p.name for p in (PACS / "cartoon").iterdir())
    assert rep["n"] == sum(map(sum, rep["matrix"])) == last["target_n"]
    for row in rep["rows"]:
        i = row["index"]
        assert row["right"] == rep["matrix"][i][i] and row["n"] == sum(rep["matrix"][i])
        assert row["collapsed"] == (row["acc"] <= api.COLLAPSE_AT)

    # every cell: its count, the images themselves (the target split's thumbnails at the rows predicted so)
    m = rep["matrix"]
    opened = 0
    for i in range(len(m)):
        for j in range(len(m)):
            res = api.cell_images(CLI_SESSION, pacs_run, "target", i, j)
            assert res["count"] == m[i][j] and res["available"]
            assert len(res["images"]) == len(res["confidence"]) == min(m[i][j], thumbs.MAX_PER_VIEW)
            assert res["confidence"] == sorted(res["confidence"], reverse=True)
            assert (res["true"], res["predicted"]) == (rep["classes"][i], rep["classes"][j])
            if m[i][j] and i != j and opened < 3:  # the pixels: exactly these images, as the model saw them
                seen = _thumbs_of(i, j, pacs_run)
                assert len(seen) == m[i][j]
                shown = {im.tobytes() for im in res["images"]}
                assert shown <= {im.tobytes() for im in seen}
                opened += 1
    assert opened, "a run with no confusion at all cannot show this"
    assert not any(k in json.dumps({k: v for k, v in res.items() if k != "images"}) for k in ("thumbs", ".npy", "/"))


def _thumbs_of(true_class, predicted, run_id):
    """The thumbnails, made anew from the run's own evaluation images, of those the run predicted so."""
    import torch

    from tl_core import RunConfig
    from tl_core.data import thumbs
    from tl_core.data.loaders import prepare
    from tl_core.base.inputs import InputSpec
    from tl_core.runs import get_run, read_predictions, store

    p = read_predictions(run_id, "last")["target"]
    rows = torch.as_tensor(p["rows"][(p["true"] == true_class) & (p["pred"] == predicted)].astype(np.int64))
    cfg = RunConfig.from_dict(get_run(run_id)["config"])
    x = prepare(cfg.data, cfg.train.seed).target.x_test[rows]
    meta = json.loads(next(store().run_dir(run_id).glob("ckpt-*/model.json")).read_text())
    ims = thumbs.seen(x, InputSpec.from_dict(meta["input_spec"]))
    return [im[..., 0] if im.shape[-1] == 1 else im for im in ims]


def test_a_map_point_opens_its_image_and_the_source_split_has_its_cells(pacs_run):
    from tl_core.app import api
    from tl_core.policy.access import CLI_SESSION

    emb = api.read_embedding(CLI_SESSION, pacs_run)
    assert len(emb["row"]) == len(emb["x"])
    for i in (0, len(emb["x"]) - 1):
        shown = api.point_image(CLI_SESSION, pacs_run, emb["epoch"], i)
        assert shown["domain"] == emb["domain"][i] and shown["image"] is not None
        assert shown["image"].ndim == 3 and max(shown["image"].shape[:2]) <= 48
    assert api.point_image(CLI_SESSION, pacs_run, emb["epoch"], 10**6) is None
    src = api.class_report(CLI_SESSION, pacs_run, "source")
    assert src["n"] == sum(map(sum, src["matrix"])) and src["rows"]
    with pytest.raises(Exception, match="source' or 'target"):
        api.class_report(CLI_SESSION, pacs_run, "../etc")


def test_another_session_cannot_fetch_a_private_runs_images(pacs_run, tmp_path_factory):
    """A student's own run (private): another session gets the same refusal as for a run that does not exist."""
    from tl_core.app import api
    from tl_core.base.errors import NotVisible

    alice, bob = named_session("alice-behind"), named_session("bob-behind")
    cfg = api.default_config()
    cfg["data"] = {"source": "syndigits", "target": "uci_digits", "max_per_domain": 200, "target_labels": "none"}
    cfg["method"] = {"name": "source_only", "params": {}}
    cfg["train"].update(epochs=1, steps_per_epoch=5, batch_size=16, embedding="pca", embed_points=40)
    from tl_core import runs

    rid = api.submit(cfg, alice)
    r = runs.wait(rid, timeout_s=300)
    assert r["status"] == "finished", r.get("reason")
    assert api.class_report(alice, rid)["n"] > 0
    assert api.cell_images(alice, rid, "target", 0, 0)["count"] >= 0
    for call in (lambda: api.class_report(bob, rid), lambda: api.cell_images(bob, rid, "target", 0, 0),
                 lambda: api.point_image(bob, rid, None, 0)):
        with pytest.raises(NotVisible):
            call()
    api.publish_run(alice, rid, True)  # shared with the class: read-only for everyone
    assert api.cell_images(bob, rid, "target", 0, 0)["count"] >= 0


def test_a_reused_run_shows_the_same_images(pacs_run):
    """Identical inputs are trained once: the run that reuses it opens the same cells (hard-linked predictions)."""
    from tl_core.app import api
    from tl_core.policy.access import CLI_SESSION

    again = cli_train(*PACS_RUN)
    assert again["run_id"] != pacs_run and again.get("reused_from") == pacs_run
    a, b = api.class_report(CLI_SESSION, pacs_run), api.class_report(CLI_SESSION, again["run_id"])
    assert a["matrix"] == b["matrix"]
    i, j = max(((i, j) for i in range(len(a["matrix"])) for j in range(len(a["matrix"])) if i != j),
               key=lambda c: a["matrix"][c[0]][c[1]])
    x, y = (api.cell_images(CLI_SESSION, r, "target", i, j) for r in (pacs_run, again["run_id"]))
    assert x["count"] == y["count"] and all(np.array_equal(p, q) for p, q in zip(x["images"], y["images"]))


def test_the_train_page_opens_a_cell_and_names_a_collapsed_class(pacs_run):
    """AppTest: the Train page of the finished run; picking a cell shows its images, as many as it counts
    (up to the cap), and a class that collapsed is said in words."""
    from streamlit.testing.v1 import AppTest

    from tl_core.app import api
    from tl_core.policy.access import CLI_SESSION

    rep = api.class_report(CLI_SESSION, pacs_run)
    at = AppTest.from_file(str(ROOT / "pages" / "4_train.py"), default_timeout=120)
    at.query_params["run"] = pacs_run
    at.run()
    assert not at.exception
    assert any(s.value == "The images behind the numbers" for s in at.subheader)
    collapsed = [r for r in rep["rows"] if r["collapsed"]]
    warnings = " ".join(w.value for w in at.warning)
    assert all(r["class"] in warnings for r in collapsed) and ("collapsed" in warnings) == bool(collapsed)
    sb = next(s for s in at.selectbox if s.label.startswith("Open a cell"))
    cell = sb.options[1]  # the largest confusion
    i, j = max(((i, j) for i in range(len(rep["matrix"])) for j in range(len(rep["matrix"])) if i != j),
               key=lambda c: (rep["matrix"][c[0]][c[1]], -c[0], -c[1]))
    assert cell.startswith(f"true {rep['classes'][i]} → predicted {rep['classes'][j]} ({rep['matrix'][i][j]})")
    sb.set_value((i, j)).run()
    assert not at.exception
    (image,) = at.get("image")
    assert len(image.proto.imgs) == min(rep["matrix"][i][j], 60)
    assert any(f"{rep['matrix'][i][j]} image" in m.value for m in at.markdown)
