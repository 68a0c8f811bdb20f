"""Shared bits of the pages: the session's identity, the draft config, the sidebar, messages."""
from __future__ import annotations

import copy
import logging
import threading
from contextlib import contextmanager

import streamlit as st

from tl_core import StoreBusy, TLError
from tl_core.app import api
from tl_core.app.api import escape_markdown  # the pages' one escaping of users' text

COOKIE = "tl_session"
SEAT_COOKIE = "tl_seat"
LOG = logging.getLogger("transferlab.app")


def init_state() -> None:
    """Claim the store for this server, then find (or make) this browser's identity.

    The identity is a random token in a cookie: it survives reloading the tab and restarting the
    server, is never put in a URL, and the server keeps only its hash (`session().owner`)."""
    ok, why = api.start_server(st.get_option("server.port"))
    if not ok:
        st.error(escape_markdown(why), icon=":material/block:")
        st.stop()
    ss = st.session_state
    if "tl_session" not in ss:
        address = str(st.get_option("server.address") or "")
        local = address in ("127.0.0.1", "localhost", "::1")
        ss.tl_session, ss.tl_token, ss.tl_new_token = api.open_session(st.context.cookies.get(COOKIE), local)
        # a seat (a teacher's join link, kept in its own cookie) or a sign-in holds compute on a shared server
        link = st.query_params.get("seat")
        seated, ss.tl_seat_note = api.seat_session(link or st.context.cookies.get(SEAT_COOKIE), signed_in(), local,
                                                   from_link=bool(link))
        if seated is not None:
            ss.tl_session = seated
            ss.tl_seat_token = link or ""  # a new link's token goes into the seat cookie
        if link is not None:
            del st.query_params["seat"]  # the token leaves the address bar (and screenshots, and shared links)
    if "cfg" not in ss:
        ss.cfg = api.default_config()
        draft = st.query_params.get("draft")
        if draft:  # a reload, or a copied address: the same draft again
            ss.cfg = api.draft_from_query(draft, ss.cfg)


_VIA_APP = threading.local()  # Streamlit runs each session's script in a thread of its own


@contextmanager
def via_app():
    """`app.py` runs the chosen page inside this, so a page knows it was reached through the app."""
    _VIA_APP.on = True
    try:
        yield
    finally:
        _VIA_APP.on = False


def _leave_legacy_navigation() -> None:
    """Streamlit treats a `pages/` folder as its old multipage layout until `app.py` has called
    `st.navigation` once in the server's process: a deep link (`/train?run=...`) opened first on a
    freshly started server would run the page alone, list every file of the folder as a page and
    skip `app.py`. Switch that off, and send a session that has never been through `app.py` there
    (the page's URL, and so its hash, is the same in both layouts: the user lands where they asked).
    A session that has been through `app.py` is never run again here: a rerun could drop its click."""
    from streamlit.runtime.pages_manager import PagesManager

    ss = st.session_state
    if getattr(_VIA_APP, "on", False):
        ss["tl_via_app"] = True
        return
    PagesManager.uses_pages_directory = False
    if not ss.get("tl_via_app"):
        ss["tl_via_app"] = True  # once at most
        st.rerun()


def page_setup() -> None:
    """First thing after a page's title: this session's identity, and a store that answers. A store
    locked by another program gives a notice that retries by itself, never a hang or a traceback."""
    _leave_legacy_navigation()
    init_state()
    busy = api.store_busy()
    if busy:
        busy_notice(busy)
        st.stop()


def session():
    return st.session_state.tl_session


def remember_identity() -> None:
    """Store a new token in the browser (a first-party cookie, SameSite=Strict, one year), and a join
    link's seat token in its own cookie (for the class: a term)."""
    ss = st.session_state
    script = ""
    if ss.get("tl_new_token"):
        script += f"document.cookie = '{COOKIE}={ss.tl_token}; path=/; max-age=31536000; SameSite=Strict';"
    if ss.get("tl_seat_token"):
        script += f"document.cookie = '{SEAT_COOKIE}={ss.tl_seat_token}; path=/; max-age=15552000; SameSite=Strict';"
    if script:
        st.html(f"<script>{script}</script>", unsafe_allow_javascript=True)


def auth_configured() -> bool:
    """Whether the server's owner configured sign-in (an [auth] section in .streamlit/secrets.toml)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all
        return False


def signed_in() -> tuple[str, str] | None:
    """(subject, name) of a browser signed in through st.login, or None."""
    if not auth_configured():
        return None
    try:
        if not st.user.is_logged_in:
            return None
        subject = st.user.get("sub") or st.user.get("email")
        return (str(subject), str(st.user.get("name") or st.user.get("email") or "signed in")) if subject else None
    except Exception:  # noqa: BLE001 - a provider that sent no identity: not signed in
        return None


def seat_panel() -> None:
    """The sidebar's word on this browser's seat, with sign-in and sign-out where sign-in is set up."""
    ss = st.session_state
    if ss.get("tl_seat_note"):
        st.warning(escape_markdown(ss.tl_seat_note), icon=":material/event_seat:")
    words = api.seat_words(session())
    if words:
        st.caption(escape_markdown(words))
    if auth_configured():
        if signed_in() is not None:
            if st.button("Sign out", key="sign-out"):
                st.logout()
        elif not session().seated and st.button("Sign in", key="sign-in", icon=":material/login:"):
            st.login()


def cfg() -> dict:
    return st.session_state.cfg


def update(section: str, **values) -> None:
    new = copy.deepcopy(st.session_state.cfg)
    new[section].update(values)
    st.session_state.cfg = new
    keep_draft_in_url()


def keep_draft_in_url() -> None:
    """The guided pages' choices live in the address too (`?draft=...`), as the Experiments page's do."""
    text = api.draft_to_query(st.session_state.cfg)
    if st.query_params.get("draft") != text:
        st.query_params["draft"] = text




def error_box(e: Exception) -> None:
    """A user mistake as a message; a locked store as "busy, retrying"; anything else as a short note,
    its traceback in the server log."""
    if isinstance(e, StoreBusy):
        busy_notice(str(e))
    elif isinstance(e, TLError):
        st.error(escape_markdown(e), icon=":material/error:")
    else:
        LOG.error("unexpected error in a page", exc_info=e)
        st.error(f"Something went wrong on our side ({type(e).__name__}). Please try again; "
                 f"if it persists, report it with the server log.", icon=":material/bug_report:")


def next_button(page: str, label: str) -> None:
    if st.button(label, type="primary", key=f"next-{page}"):
        st.switch_page(page)


def busy_notice(message: str) -> None:
    """The store is held by another program: say so, and look again every few seconds."""
    st.warning(escape_markdown(message), icon=":material/hourglass_top:")

    @st.fragment(run_every=3)
    def retry() -> None:
        if not api.store_busy():
            st.rerun()
        st.caption("still busy; trying again in 3 s")

    retry()


@st.fragment(run_every=5)
def _queue() -> None:
    try:
        q = api.queue_summary(session())
    except Exception:  # noqa: BLE001 - the sidebar must never break a page
        st.caption("run queue unavailable")
        return
    st.caption(f"Server: {q['running']} running, {q['queued']} queued (at most {q['limit']} at a time)")
    for r in q["mine"]:
        st.caption(escape_markdown(f"• yours: {api.run_label(r)}"))


@st.fragment(run_every=10)
def _executor() -> None:
    try:
        ex = api.executor_summary()
    except Exception:  # noqa: BLE001 - the sidebar must never break a page
        st.caption("where runs train: unknown")
        return
    if ex["ok"]:
        st.caption(escape_markdown(ex["text"]))
    else:  # the app keeps working; queued runs wait for the cluster
        st.warning(escape_markdown(ex["text"]), icon=":material/cloud_off:")


def sidebar() -> None:
    with st.sidebar:
        st.caption(f"Compute: {device_summary()}")
        _executor()
        _queue()
        seat_panel()
        remember_identity()


@st.cache_resource
def device_summary() -> str:
    return api.device_summary()
