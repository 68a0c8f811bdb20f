"""AppTest for every page: widgets present, a run submitted from the Train page, charts rendered
from a run store prepared by the test, errors shown as messages."""
import os

import pytest
from streamlit.testing.v1 import AppTest

from conftest import class_zip, isolated_home, PACS, ROOT, tiny_config
from tl_core.planning.validation import validate

APP = str(ROOT / "app.py")
TINY = {"epochs": 2, "steps_per_epoch": 8, "batch_size": 16, "embedding": "pca", "embed_points": 50}


@pytest.fixture(scope="module")
def store_home(tmp_path_factory):
    """A run store with two finished runs (source only and DANN), trained for real but tiny."""
    home = isolated_home(tmp_path_factory.mktemp("apphome"))
    old = os.environ["TL_HOME"]
    os.environ["TL_HOME"] = str(home)
    try:
        ids = _prepare_runs()
        yield home, ids
    finally:
        os.environ["TL_HOME"] = old


def _prepare_runs():
    from tl_core.models.checkpoint import Checkpointer
    from tl_core.runs import StoreSink, store
    from tl_core.training.trainer import Trainer

    ids = {}
    for method in ("source_only", "dann"):
        cfg = validate(tiny_config(method, **TINY))
        rid = f"test-{method}"
        st = store()
        st.insert_run(rid, cfg.to_dict())
        st.update(rid, status="running")
        Trainer(cfg, on_event=StoreSink(st, rid), checkpointer=Checkpointer(st.run_dir(rid))).fit()
        ids[method] = rid
    # make the DANN run look worse than source only, to see negative transfer flagged
    store().update("test-dann", target_acc=0.05)
    return ids


@pytest.fixture
def at(store_home, monkeypatch, tmp_path):
    monkeypatch.setenv("TL_HOME", str(store_home[0]))
    monkeypatch.setenv("TL_MAX_RUNS", "1")
    monkeypatch.setenv("TL_FOLDER_ROOTS", f"{PACS.parent}:{tmp_path}")  # what the server's owner allows
    a = AppTest.from_file(APP, default_timeout=120)
    a.run()
    assert not a.exception, a.exception
    return a


def goto(at, page):
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_data_page_defaults_work_offline(at):
    goto(at, "1_data")  # the app opens on Experiments
    assert at.title[0].value.startswith("1 · Data")
    assert [s.label for s in at.selectbox][:2] == ["Source domain", "Target domain"]
    assert at.selectbox[0].value == "usps" and at.selectbox[1].value == "mnist"  # a pair where DANN helps
    assert any("same 10 classes" in s.value for s in at.success)
    assert len(at.image) >= 2  # a sample grid per domain


def test_data_page_shift_preview_and_label_mismatch(at):
    goto(at, "1_data")  # the app opens on Experiments
    at.toggle(key="shift_on").set_value(True).run()
    assert not at.exception
    assert at.session_state.cfg["data"]["target"].startswith("mnist+")
    assert len(at.image) >= 3  # before / after preview
    at.text_input[0].set_value(str(PACS / "photo")).run()
    at.button[0].click().run()  # "Add folder"
    assert not at.exception
    assert any("Added photo" in s.value for s in at.success)
    folder = next(n for n in at.selectbox[1].options if "photo" in n)
    at.selectbox[1].select(folder).run()
    assert any("do not share a label space" in e.value and "Missing in the target" in e.value for e in at.error)


def test_data_page_shows_class_names_as_text_never_as_markup(at, tmp_path):
    goto(at, "1_data")  # the app opens on Experiments
    import numpy as np
    from PIL import Image

    root = tmp_path / "tricky"
    for c in ("<img src=x onerror=alert(1)>", "[link](javascript:alert(1))", ":red[x]"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / c / f"{i}.png")
    at.text_input[0].set_value(str(root)).run()
    at.button[0].click().run()
    assert not at.exception
    msg = next(s.value for s in at.success if "Added" in s.value)
    # every markdown/HTML character arrives escaped, so it is displayed as typed
    assert r"\<img src=x onerror=alert\(1\)\>" in msg and r"\[link\]\(javascript\:alert\(1\)\)" in msg and r"\:red\[x\]" in msg


def test_data_page_bad_folder_is_a_message(at, tmp_path):
    goto(at, "1_data")  # the app opens on Experiments
    (tmp_path / "empty").mkdir()
    messages = []
    for path in ("/no/such/folder", "/etc", "~", str(tmp_path / ".." / ".."), str(tmp_path / "missing")):
        at.text_input[0].set_value(path).run()
        at.button[0].click().run()
        assert not at.exception
        messages.append([e.value for e in at.error if "cannot be used here" in e.value])
    # one message for all: it never tells whether a path exists or where it leads
    assert all(m == messages[0] and len(m) == 1 for m in messages), messages


def test_model_page_freeze_slider_updates_trainable_count(at):
    goto(at, "2_model")
    assert at.selectbox[0].value == "lenet"
    total = at.metric[1].value
    assert at.metric[0].value == total
    at.select_slider[0].set_value(2).run()
    assert not at.exception
    assert int(at.metric[0].value.replace(",", "")) < int(total.replace(",", ""))
    assert at.session_state.cfg["model"]["freeze"] == 2
    assert len(at.get("plotly_chart")) == 1  # the stage diagram


def test_model_page_missing_weights_says_what_happens(at, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    goto(at, "2_model")
    at.selectbox[0].select("resnet18").run()
    assert not at.exception
    assert any("random init" in w.value for w in at.warning)


def test_strategy_page_cards_and_widgets_from_the_registry(at):
    from tl_core import list_methods

    goto(at, "3_strategy")
    assert len(at.radio[0].options) == len(list_methods())
    assert at.radio[0].value == "dann"
    assert {n.label for n in at.number_input} >= {"trade_off", "hidden", "gamma"}
    assert any("Formula" in m.value for m in at.markdown)
    at.radio[0].set_value("finetune").run()
    assert any("needs labelled target images" in e.value for e in at.error)
    at.radio[1].set_value("k").run()
    assert not at.error and at.session_state.cfg["data"]["target_labels"] == 5


def test_strategy_page_renders_every_method_and_offers_finished_runs_as_teachers(at, store_home):
    from tl_core import list_methods

    goto(at, "3_strategy")
    for name in list_methods():
        at.radio[0].set_value(name).run()
        assert not at.exception, (name, [e.value for e in at.exception])
    at.radio[0].set_value("distill").run()
    teacher = next(sb for sb in at.selectbox if sb.label == "teacher")
    opts = teacher.options  # as displayed: "none", then "<name or method> · <pair> · seed ..." per finished run
    assert opts[0] == "none" and any(o.startswith("source_only · ") for o in opts)
    assert any(o.startswith("dann · ") for o in opts)
    assert not any("test-" in o for o in opts)  # a person reads labels, never the raw run ids
    assert any("needs a teacher" in e.value for e in at.error)  # none picked yet: the reason is shown
    teacher.set_value("test-source_only").run()
    assert not at.error and at.session_state.cfg["method"]["params"]["teacher"] == "test-source_only"


def test_train_page_launch_submits_a_run(at):
    from tl_core.runs import cancel, get_run

    at.session_state.cfg = {**at.session_state.cfg, "train": {**at.session_state.cfg["train"], **TINY}}
    goto(at, "4_train")
    launch = next(b for b in at.button if b.label == "Launch")
    assert not launch.disabled
    launch.click().run()
    assert not at.exception
    rid = at.session_state.run_id
    assert get_run(rid)["status"] in ("queued", "starting", "running", "finished")
    cancel(rid, wait_s=5)


def test_train_page_fits_a_pretrained_draft_to_the_time_budget(at):
    from tl_core import RunConfig
    from tl_core.planning.planner import raw_estimate

    at.session_state.cfg = {**at.session_state.cfg, "model": {**at.session_state.cfg["model"],
                                                                "backbone": "efficientnet_lite0", "freeze": 0},
                            "data": {**at.session_state.cfg["data"], "source": "syndigits", "target": "uci_digits"}}
    at.session_state.schedule_chosen = True  # a schedule the user set on the Strategy page is theirs
    goto(at, "4_train")
    assert any("Estimated time" in c.value for c in at.caption)
    assert any("Too long to launch" in w.value for w in at.warning)  # every stage trained at 224 px: hours
    assert next(b for b in at.button if b.label == "Launch").disabled
    next(b for b in at.button if b.label == "Fit the plan to the budget").click().run()
    assert not at.exception
    cfg = at.session_state.cfg
    assert cfg["model"]["backbone"] == "efficientnet_lite0" and cfg["model"]["freeze"] == 9
    assert cfg["model"]["bottleneck"] == 256 and cfg["model"]["input_size"] in (128, 224)
    # the plan is fitted from the reference figures (the same command trains the same steps on every machine);
    # the estimate shown is scaled by this machine's speed, which a loaded test machine makes slower
    assert raw_estimate(RunConfig.from_dict(cfg)) <= 2 * 60 + 1  # the default budget: 2 minutes
    assert any(c.value.startswith("Planned") for c in at.caption)
    assert not next(b for b in at.button if b.label == "Launch").disabled  # the fitted plan may launch


def test_the_own_images_default_is_a_plan_the_server_will_run(at):
    """Issue 30, item 6: a draft whose schedule nobody chose (a pretrained backbone, every stage trained,
    hours at 224 px) is fitted to the Train page's budget before it is offered: no refusal by default."""
    at.session_state.cfg = {**at.session_state.cfg, "model": {**at.session_state.cfg["model"],
                                                                "backbone": "efficientnet_lite0", "freeze": 0},
                            "data": {**at.session_state.cfg["data"], "source": "syndigits", "target": "uci_digits"}}
    goto(at, "4_train")
    assert not any("Too long to launch" in w.value for w in at.warning)
    assert at.session_state.cfg["model"]["freeze"] == 9
    assert any("fitted to the 2-min budget by itself" in c.value.replace("\\", "") for c in at.caption)
    assert not next(b for b in at.button if b.label == "Launch").disabled


def test_train_page_launch_disabled_with_reason(at):
    at.session_state.cfg = {**at.session_state.cfg, "method": {"name": "finetune", "params": {}}}
    goto(at, "4_train")
    launch = next(b for b in at.button if b.label == "Launch")
    assert launch.disabled
    assert any("needs labelled target images" in e.value for e in at.error)


def test_train_page_reattaches_and_draws_charts(at, store_home):
    at.query_params["run"] = store_home[1]["dann"]
    goto(at, "4_train")
    assert at.session_state.run_id == "test-dann"
    assert len(at.get("plotly_chart")) >= 7  # losses, accuracy, feature map, gap, confusion, replay, selection
    assert any("Finished" in s.value for s in at.success)


def test_compare_page_flags_negative_transfer_and_exports(at):
    goto(at, "5_compare")
    assert len(at.dataframe) == 1
    flagged = [e.value.replace("\\", "") for e in at.error if "Negative transfer" in e.value]
    assert len(flagged) == 1 and flagged[0].startswith("Negative transfer: run dann · seed ")
    assert "test-dann" not in flagged[0]  # the run by its label, not its raw id
    assert any("python -m tl_core train" in c.value for c in at.code)
    assert len(at.get("plotly_chart")) == 2


def test_predict_page_draws_target_samples(at):
    goto(at, "6_predict")
    next(b for b in at.button if b.label.startswith("Draw 8")).click().run()
    assert not at.exception
    assert len(at.image) == 8
    assert len(at.get("progress")) == 8 * 3


def test_pages_do_not_import_torch():
    import re

    for f in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        assert not re.search(r"^\s*(import|from)\s+torch", f.read_text(), re.M), f


def test_compare_page_shows_mean_and_std_over_seeds(at, store_home):
    from tl_core import RunConfig
    from tl_core.runs import get_run
    from tl_core.runs import store

    base = get_run("test-source_only")
    cfg = RunConfig.from_dict(base["config"]).replace(train={"seed": 1})
    store().insert_run("test-source_only-seed1", cfg.to_dict())
    store().update("test-source_only-seed1", status="finished", target_acc=base["target_acc"] + 0.02,
                   source_acc=base["source_acc"], epoch=2)
    goto(at, "5_compare")
    assert len(at.dataframe) == 2  # all runs, and the seed groups
    assert any("Repeated seeds" in h.value for h in at.subheader)


def test_an_upload_in_one_session_is_not_listed_in_another(store_home, monkeypatch, tmp_path):
    from tl_core.app import api

    monkeypatch.setenv("TL_HOME", str(store_home[0]))
    alice, bob = AppTest.from_file(APP, default_timeout=120), AppTest.from_file(APP, default_timeout=120)
    alice.run()
    bob.run()
    api.ingest_zip(class_zip("private"), "private", alice.session_state.tl_session)  # Alice's "Add zip"
    goto(alice, "1_data")
    goto(bob, "1_data")
    assert "private (upload)" in alice.selectbox[0].options
    assert not any("private" in o for o in bob.selectbox[0].options)


def test_a_link_to_a_run_one_may_not_see_says_so_and_shows_no_other(at, store_home):
    from tl_core.runs import store

    cfg = store().get("test-source_only")["config"]
    store().insert_run("someone-elses", cfg, owner="f" * 32)  # another session's, not shared
    try:
        at.query_params["run"] = "someone-elses"
        goto(at, "4_train")
        assert any("that you can see" in w.value for w in at.warning)
        assert not at.get("plotly_chart") and not at.metric  # no other run drawn in its place
        assert at.session_state["run_id"] != "someone-elses" if "run_id" in at.session_state else True
        at.query_params["run"] = "../../etc/passwd"
        goto(at, "4_train")
        assert any("that you can see" in w.value for w in at.warning)
        goto(at, "5_compare")
        assert "someone-elses" not in [o for sb in at.selectbox for o in sb.options]
    finally:
        store().delete("someone-elses")


def test_a_reload_keeps_the_guides_choices_and_a_hostile_draft_is_ignored(store_home, monkeypatch, tmp_path):
    """The draft lives in the address (`?draft=`), as the Experiments page's setup does: a reload, or
    the address opened in a new tab, comes back to the same choices."""
    from tl_core.app import api

    monkeypatch.setenv("TL_FOLDER_ROOTS", str(tmp_path))
    draft = api.default_config()
    draft["method"] = {"name": "coral", "params": {}}
    draft["train"]["seed"] = 7
    text = api.draft_to_query(draft)
    again = AppTest.from_file(APP, default_timeout=120)
    again.query_params["draft"] = text
    again.run()
    again.switch_page("pages/4_train.py").run()
    assert not again.exception
    cfg = again.session_state.cfg
    assert cfg["method"]["name"] == "coral" and cfg["train"]["seed"] == 7
    for bad in ("!!!", "x" * 5000, "e30=" * 3):  # mistyped or oversized: the defaults
        assert api.draft_from_query(bad, api.default_config()) == api.default_config()
    hostile = AppTest.from_file(APP, default_timeout=120)  # a link naming a server folder: refused when used
    hostile.query_params["draft"] = api.draft_to_query({**api.default_config(),
                                                        "data": {**draft["data"], "source": "folder:/etc"}})
    hostile.run()
    hostile.switch_page("pages/4_train.py").run()
    assert not hostile.exception
    assert any("cannot be used here" in e.value for e in hostile.error)
