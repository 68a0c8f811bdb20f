"""The Experiments page's view of one experiment: live progress, the verdict, the results with their
intervals, the curves and feature maps, the member runs, and sharing or deleting it."""
import streamlit as st

from pages._ui import error_box, escape_markdown
from tl_core import StoreBusy
from tl_core.app import api
from tl_core.app import plots


@st.fragment(run_every=3.0)
def live(me, exp_id: str) -> None:
    """The grid's progress; the results below are redrawn when a run finishes."""
    ss = st.session_state
    try:
        p = api.experiment_progress(me, exp_id)
    except StoreBusy as e:
        st.caption(escape_markdown(e))
        return
    seen = (p["runs_done"], p.get("runs_ended"), p["status"])
    if ss.get(f"xseen-{exp_id}", seen) != seen:
        ss[f"xseen-{exp_id}"] = seen
        st.rerun()
    ss[f"xseen-{exp_id}"] = seen
    st.progress(min(p["fraction"], 1.0), text=api.progress_words(p))


def show(me, exp_id: str, presets: dict) -> None:
    q = st.query_params
    v = api.view_experiment(me, exp_id)
    spec, p = v["spec"], v["progress"]
    title = presets[v["preset"]]["title"] if v["preset"] in presets else v["name"]
    heading, caption = api.header(v, title, api.domain_label(spec["source"]), api.domain_label(spec["target"]))
    st.subheader(escape_markdown(heading))
    c1, c2, c3 = st.columns([2, 1, 1])
    c1.caption(escape_markdown(caption))
    if c2.button("New experiment", key="new"):
        q.clear()
        q.update(api.experiment_query(spec))
        st.rerun()
    active = p["status"] in ("queued", "running")
    if v["mine"] and active and c3.button("Stop", key="stop"):
        try:
            api.cancel_experiment(me, exp_id)
            st.rerun()
        except Exception as e:  # noqa: BLE001
            error_box(e)
    if active:
        live(me, exp_id)
    if v["reused"] or v["waiting_on_identical"]:
        n = len(v["runs"])
        words = (f"{v['reused']} of {n} runs had identical inputs (config, data, code and machine) to runs "
                 f"trained earlier on this server and carry their numbers; " if v["reused"] else "")
        words += (f"{v['waiting_on_identical']} wait on identical runs training now. " if v["waiting_on_identical"]
                  else "")
        st.info(escape_markdown(words + "Same inputs give the same numbers here, so nothing was trained twice."),
                icon=":material/link:")
        if not active and st.button("Train again", key="xagain", icon=":material/replay:",
                                    help="Launch this grid anew with every run trained, none reused."):
            try:
                new_id = api.train_experiment_again(me, exp_id)
                q.clear()
                q["experiment"] = new_id
                st.rerun()
            except Exception as e:  # noqa: BLE001
                error_box(e)
    box = {"success": st.success, "warning": st.warning, "info": st.info}[api.verdict_tone(v)]
    box(api.escape_markdown(v["verdict"]).replace("\\*\\*", "**"), icon=":material/gavel:")
    for level, text in api.flag_lines(v):
        (st.error if level == "error" else st.warning)(escape_markdown(text))
    st.dataframe(api.result_rows(v), hide_index=True)
    a, b = st.columns(2)
    a.plotly_chart(plots.experiment_bars(v["results"], v["reference_source"]), key="xbars")
    curves = {f"{r['strategy']} · seed {r['seed']}": v["histories"][r["id"]] for r in v["runs"]
              if r["id"] in v["histories"]}
    b.plotly_chart(plots.overlay_accuracy(curves), key="xcurves")
    maps = api.map_runs(v)
    if maps:
        st.caption(api.MAP_CAPTION.format(seed=spec["seeds"][0]))
        cols = st.columns(min(len(maps), 3))
        for i, (label, rid) in enumerate(maps):
            with cols[i % len(cols)]:
                st.markdown(f"**{escape_markdown(label)}**")
                h = v["histories"][rid]
                fig = plots.embedding_scatter(api.read_embedding(me, rid), h[-1].get("classes") if h else None)
                fig.update_layout(showlegend=False)  # the caption above says what the colours are; columns are narrow
                st.plotly_chart(fig, key=f"map-{rid}")
    if v["preset"] in presets:
        with st.expander("The lesson"):
            st.markdown(escape_markdown(presets[v["preset"]]["lesson"]))
    with st.expander("Runs of this experiment (open one to see its loss terms and feature map over epochs)"):
        for label, rid in api.run_links(v):
            st.page_link("pages/4_train.py", label=escape_markdown(label), query_params={"run": rid},
                         icon=":material/monitoring:")
    manage(me, exp_id, v, active)


def manage(me, exp_id: str, v: dict, active: bool) -> None:
    """Download the results; for the owner, share with the class or delete."""
    c1, c2, c3 = st.columns(3)
    c1.download_button("Download results (JSON)", api.export_experiment(me, exp_id), f"transferlab-{exp_id}.json",
                       mime="application/json")
    if not v["mine"] or active:
        return
    shared = c2.toggle("Share with the class", value=v["published"], key=f"xpub-{exp_id}",
                       help="Everyone on this server can then open this experiment (read-only).")
    if shared != v["published"]:
        api.publish_experiment(me, exp_id, shared)
        st.rerun()
    sure = c3.checkbox("Yes, delete this experiment and its runs", key=f"xsure-{exp_id}")
    if c3.button("Delete experiment", disabled=not sure, key="xdel"):
        try:
            api.delete_experiment(me, exp_id)
            st.query_params.clear()
            st.rerun()
        except Exception as e:  # noqa: BLE001
            error_box(e)
