"""The Experiments page's "Ask the advisor" panel: the ranking for a pair before training, its reasons,
its own track record, and one click that launches the experiment checking it."""
from typing import Callable

import streamlit as st

from pages._ui import error_box, escape_markdown
from tl_core import app_api as api
from tl_core import plots


def advice_panel(me, src: str, tgt: str, open_launched: Callable) -> None:
    ss = st.session_state
    with st.expander("Ask the advisor: which backbone, freeze depth and method are likely to work here?",
                     expanded=bool(ss.get("advice"))):
        st.caption(api.ADVISOR_HELP)
        if st.button("Ask the advisor", key="ask-advisor", icon=":material/psychology:"):
            with st.spinner("Scoring the frozen features of each candidate ..."):
                try:
                    ss["advice"] = api.advise(me, src, tgt)
                except Exception as e:  # noqa: BLE001
                    error_box(e)
                    return
        adv = ss.get("advice")
        if not adv or (adv["source"], adv["target"]) != (src, tgt):
            return
        st.markdown(f"**{escape_markdown(adv['summary'])}**")
        if adv["warning"]:
            st.warning(escape_markdown(adv["warning"]), icon=":material/report:")
        recs = adv["recommendations"]
        if recs:
            st.dataframe(api.advice_rows(adv), hide_index=True, width="stretch")
            st.markdown(escape_markdown("Why: " + " ".join(recs[0]["reasons"])))
            st.plotly_chart(plots.advice_bars(recs), width="stretch", key="advice-bars")
        with st.popover("The scores behind it"):
            st.dataframe(api.score_rows(adv), hide_index=True)
        record = api.advisor_track_record()
        if record:
            st.caption(escape_markdown(api.record_words(record)))
            st.plotly_chart(plots.advisor_track_record(record.get("held_out", [])), width="stretch",
                            key="advisor-record")
        if recs and st.button("Launch the check: recommended, runner-up and source only × 3 seeds",
                              key="launch-advised", type="primary"):
            open_launched(lambda: api.launch_advised(me, adv))
