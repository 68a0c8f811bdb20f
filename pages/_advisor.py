"""The Experiments page's "Ask the advisor" panel: the ranking for a pair before training, its reasons,
its own track record, and one click that launches the experiment checking it. The question runs as a
queued job outside the web server; this panel asks, shows its progress and the answer when it is there
(also after the page was left and reopened)."""
from typing import Callable

import streamlit as st

from pages._ui import error_box, escape_markdown
from tl_core.app import api
from tl_core.app import plots

WAITING = ("queued", "starting", "running")


def advice_panel(me, src: str, tgt: str, open_launched: Callable) -> None:
    ss = st.session_state
    try:
        job = api.latest_advice(me, src, tgt)
    except Exception as e:  # noqa: BLE001 - a store that does not answer: the rest of the page still works
        error_box(e)
        return
    with st.expander("Ask the advisor: which backbone, freeze depth and method are likely to work here?",
                     expanded=bool(ss.get("advice_open") or (job and job["status"] in WAITING))):
        st.caption(api.ADVISOR_HELP)
        done = job is not None and job["status"] in ("finished", "failed")
        if st.button("Ask again" if done else "Ask the advisor", key="ask-advisor", icon=":material/psychology:",
                     disabled=job is not None and job["status"] in WAITING):
            try:
                job = api.ask_advisor(me, src, tgt, fresh=done)
            except Exception as e:  # noqa: BLE001
                error_box(e)
                return
            ss["advice_open"] = True
        if job is None:
            return
        if job["status"] in WAITING:
            _waiting(me, job["id"])
            return
        if job["status"] == "failed":
            st.error(escape_markdown(job["reason"]), icon=":material/error:")
            return
        _answer(me, job["result"], open_launched)


@st.fragment(run_every=2)
def _waiting(me, job_id: str) -> None:
    """The question's progress, read every 2 s; the whole page redraws once it is answered."""
    try:
        job = api.advice_job(me, job_id)
    except Exception as e:  # noqa: BLE001
        error_box(e)
        return
    if job["status"] not in WAITING:
        st.rerun()
    st.progress(min(1.0, max(0.0, float(job["fraction"] or 0.0))), text=escape_markdown(job["words"]))
    st.caption("You can leave this page: the answer waits here for you.")


def _answer(me, adv: dict, open_launched: Callable) -> None:
    st.markdown(f"**{escape_markdown(adv['summary'])}**")
    if adv["warning"]:
        st.warning(escape_markdown(adv["warning"]), icon=":material/report:")
    recs = adv["recommendations"]
    if recs:
        st.dataframe(api.advice_rows(adv), hide_index=True, width="stretch")
        st.markdown(escape_markdown("Why: " + " ".join(recs[0]["reasons"])))
        if adv.get("probes"):
            st.plotly_chart(plots.probe_bars(adv["probes"]), width="stretch", key="probe-bars")
            st.caption(escape_markdown(api.PROBE_HELP.format(seconds=adv.get("probe_s", 0.0))))
        st.plotly_chart(plots.advice_bars(recs), width="stretch", key="advice-bars")
    with st.popover("The scores behind it"):
        st.dataframe(api.score_rows(adv), hide_index=True)
    probe_record = api.probe_record_words(adv["track_record"]) if adv.get("ranked_by") == "probes" else ""
    if probe_record:
        st.caption(escape_markdown(probe_record))
    record = api.advisor_track_record()
    if record:
        st.caption(escape_markdown(api.record_words(record)))
        st.plotly_chart(plots.advisor_track_record(record.get("held_out", [])), width="stretch",
                        key="advisor-record")
    if recs and st.button("Launch the check: recommended, runner-up and source only × 3 seeds",
                          key="launch-advised", type="primary"):
        open_launched(lambda: api.launch_advised(me, adv))
