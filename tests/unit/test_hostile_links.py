"""Issue 29, item 3: nothing a link or a draft carries can crash a page. Every page is opened with each
hostile link of the classroom audit; only the app's own refusals may show, never an exception. And the
Experiments page's custom grid keeps working when a newcomer changes its source and target with the
time per run left at its default (0: no `budget=` in the link)."""
import base64
import json

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, module_home
from tl_core.app import api
from tl_core.config import RunConfig, loads_bounded
from tl_core.base.errors import ConfigError

APP = str(ROOT / "app.py")
PAGES = ["0_experiments", "1_data", "2_model", "3_strategy", "4_train", "5_compare", "6_predict"]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _draft(**fields) -> str:
    return _b64(json.dumps(fields))


HOSTILE = {
    "nested draft": {"draft": _b64("[" * 1400 + "]" * 1400)},
    "nested object": {"draft": _b64('{"a":' * 600 + "1" + "}" * 600)},
    "NaN epochs": {"draft": _draft(**{"train.epochs": "NaN"})},
    "NaN number": {"draft": _b64('{"train.lr": NaN}')},
    "fractional steps": {"draft": _draft(**{"train.steps_per_epoch": 1.5})},
    "huge batch": {"draft": _draft(**{"train.batch_size": 10**30})},
    "params not an object": {"draft": _draft(method={"name": "dann", "params": [1, 2]})},
    "param infinity": {"draft": _b64('{"method": {"name": "dann", "params": {"trade_off": Infinity}}}')},
    "not base64": {"draft": "%%%not-base64%%%"},
    "not utf-8": {"draft": base64.urlsafe_b64encode(b"\xff\xfe\x00").decode()},
    "a list": {"draft": _b64("[1, 2, 3]")},
    "server folder": {"draft": _draft(**{"data.source": "folder:/etc"})},
    "budget NaN": {"source": "usps", "target": "mnist", "methods": "dann", "budget": "NaN"},
    "budget huge": {"source": "usps", "target": "mnist", "methods": "dann", "budget": "1e309"},
    "seeds huge": {"preset": "quickstart", "seeds": "9" * 400},
    "experiment path": {"experiment": "../../etc/passwd"},
    "run path": {"run": "../../etc/passwd"},
    "strategy folder": {"source": "folder:/etc", "target": "mnist", "methods": "dann"},
}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with module_home(tmp_path_factory, "hostile") as h:
        yield h


@pytest.mark.parametrize("name", list(HOSTILE))
def test_every_page_opens_with_a_hostile_link_and_shows_no_exception(home, name):
    for page in PAGES:
        at = AppTest.from_file(APP, default_timeout=120)
        for k, v in HOSTILE[name].items():
            at.query_params[k] = v
        at.run()
        if page != "0_experiments":
            at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (name, page, [e.value for e in at.exception])
        assert at.title, (name, page)  # the page is there, its refusal in words where it had one
        t, d = at.session_state.cfg["train"], api.default_config()["train"]
        assert [t[k] for k in ("epochs", "steps_per_epoch", "batch_size", "lr")] == \
            [d[k] for k in ("epochs", "steps_per_epoch", "batch_size", "lr")], (name, page)  # the draft was refused


def test_a_draft_is_refused_field_by_field_and_a_good_one_kept():
    base = api.default_config()
    for q in HOSTILE.values():
        if "draft" in q and q is not HOSTILE["server folder"]:
            assert api.draft_from_query(q["draft"], base) == base
    good = api.draft_from_query(_draft(**{"train.epochs": 3, "train.lr": 0.01}), base)
    assert good["train"]["epochs"] == 3 and good["train"]["lr"] == 0.01


def test_config_readers_refuse_bad_shapes_in_words():
    for bad in ({"data": "x"}, {"train": {"epochs": "NaN"}}, {"train": {"steps_per_epoch": 1.5}},
                {"train": {"lr": float("nan")}}, {"model": {"freeze": True}}, {"data": {"source": 5}},
                {"method": {"name": "dann", "params": {"x": [1]}}}, [1, 2], "text"):
        with pytest.raises(ConfigError):
            RunConfig.from_dict(bad)
    with pytest.raises(ConfigError, match="nested"):
        loads_bounded("[" * 50 + "]" * 50, "A file")
    assert loads_bounded('{"a": "[[[[[[[[[[[[[[[[[["}', "A file") == {"a": "[" * 18}  # brackets in text are text


def test_changing_a_custom_grids_source_and_target_with_the_default_time(home):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.segmented_control[0].set_value("custom").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "budget" not in at.query_params
    at.selectbox[0].set_value("mnist").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox[1].set_value("usps").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["source"] == ["mnist"] or at.query_params["source"] == "mnist"
    at.number_input[0].set_value(1.0).run()  # a time per run, then back to the default
    assert at.query_params.get("budget") in ("60", ["60"])
    at.number_input[0].set_value(0.0).run()
    assert not at.exception and "budget" not in at.query_params
    at.selectbox[0].set_value("usps").run()
    assert not at.exception, [e.value for e in at.exception]
