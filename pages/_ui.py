"""Shared bits of the pages: session state for the draft config, the sidebar, messages."""
from __future__ import annotations

import copy
import re
import uuid

import streamlit as st

from tl_core import TLError
from tl_core import app_api as api


def init_state() -> None:
    ss = st.session_state
    if "cfg" not in ss:
        ss.cfg = api.default_config()
    if "session_id" not in ss:
        ss.session_id = uuid.uuid4().hex[:12]
    ss.setdefault("extra_domains", {})  # uploaded or folder domains of this session: name -> label


def cfg() -> dict:
    return st.session_state.cfg


def update(section: str, **values) -> None:
    new = copy.deepcopy(st.session_state.cfg)
    new[section].update(values)
    st.session_state.cfg = new


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: object) -> str:
    """Text from users (class and dataset names, messages quoting them) escaped for Streamlit's
    markdown: shown as written, never as formatting, links or HTML."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def error_box(e: Exception) -> None:
    """A user mistake as a message; anything else as a short note (details stay in the server log)."""
    if isinstance(e, TLError):
        st.error(plain(e), icon=":material/error:")
    else:
        st.error(f"Something went wrong on our side ({type(e).__name__}). Please try again; "
                 f"if it persists, report it with the server log.", icon=":material/bug_report:")


def next_button(page: str, label: str) -> None:
    if st.button(label, type="primary", key=f"next-{page}"):
        st.switch_page(page)


@st.fragment(run_every=3)
def _queue() -> None:
    try:
        q = api.queue_summary()
    except Exception:  # noqa: BLE001 - the sidebar must never break a page
        st.caption("run queue unavailable")
        return
    st.caption(f"Runs: {len(q['running'])} running, {len(q['queued'])} queued (at most {q['limit']} at a time)")
    for r in q["running"] + q["queued"]:
        st.caption(f"• {api.run_label(r)}")


def sidebar() -> None:
    with st.sidebar:
        st.caption(f"Compute: {device_summary()}")
        _queue()


@st.cache_resource
def device_summary() -> str:
    return api.device_summary()
