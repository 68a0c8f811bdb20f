"""Step 4: launch a run and watch it live (the run lives in the run store, not in this page).

Watching is cheap: a small fragment polls the run's progress (a few numbers) and redraws only
itself; the charts are drawn once per epoch, when a new epoch's metrics (and feature map) land."""
import streamlit as st

from pages._ui import cfg, error_box, escape_markdown, keep_draft_in_url, page_setup, session
from pages._run_view import charts, history, status_panel
from tl_core import NotVisible
from tl_core.app import api
from tl_core.app import plots

st.title("4 · Train: launch, and watch knowledge transfer")
page_setup()
keep_draft_in_url()  # a reload keeps this session's choices
ss, me = st.session_state, session()

valid, why = api.validate(cfg(), session())
if valid is not None and (why := api.allowed(me, valid)):
    valid = None
what = (cfg()["data"]["source"], cfg()["data"]["target"], cfg()["model"]["backbone"], cfg()["method"]["name"])
if valid is not None and not ss.get("schedule_chosen") and ss.get("auto_planned") != what:
    ss.auto_planned = what  # once per pair, backbone and method: a schedule nobody chose fits the budget
    if fitted := api.fit_default_plan(cfg(), valid, float(ss.get("budget", 2.0)) * 60):
        st.session_state.cfg, ss.plan_notes = fitted
        keep_draft_in_url()
        st.rerun()
with st.container(border=True):
    if valid is not None:
        st.markdown(api.describe_plan(valid))
        est = api.estimate_seconds(valid)
        limit = api.run_limit_s(me)
        c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
        c1.caption(f"Estimated time: about {est / 60:.1f} min on this machine.")
        if why := api.too_long_words(est, limit):  # never offer what the server would stop half-way
            st.warning(escape_markdown(f"Too long to launch: {why}"), icon=":material/timer_off:")
            valid = None
        budget = c2.number_input("Time budget (min)", 0.5, 30.0, value=2.0, step=0.5, key="budget",
                                 help="Fit the plan to this budget: steps from the measured speed of this machine; "
                                      "for a pretrained backbone also the frozen stages, input size and batch.")
        if c3.button("Fit the plan to the budget", key="fit"):
            ss.schedule_chosen = False
            planned, notes = api.plan_for_budget(cfg(), budget * 60)
            st.session_state.cfg = planned
            st.session_state.plan_notes = notes
            keep_draft_in_url()
            st.rerun()
        if ss.get("plan_notes"):
            st.caption(escape_markdown("Planned: " + "; ".join(ss.plan_notes) + "."))
    else:
        st.error(escape_markdown(f"Cannot launch yet: {why}"), icon=":material/error:")
    if st.button("Launch", type="primary", disabled=valid is None, help=why or "Queue this run"):
        try:
            ss.run_id = api.submit(cfg(), me)
            st.query_params["run"] = ss.run_id
        except Exception as e:  # noqa: BLE001
            error_box(e)

wanted = st.query_params.get("run")
if wanted:
    try:
        api.get_run(me, wanted)
        ss.run_id = wanted
    except NotVisible as e:  # never show a different run in its place
        st.warning(escape_markdown(e), icon=":material/visibility_off:")
        if st.button("Show my runs instead"):
            del st.query_params["run"]
            st.rerun()
        st.stop()
recent = api.list_runs(me, limit=50)
labels = {r["id"]: api.run_label(r) for r in recent}
if ss.get("run_id") and ss.run_id not in labels:
    try:
        labels[ss.run_id] = api.run_label(api.get_run(me, ss.run_id))
    except NotVisible:
        ss.run_id = None
if not labels:
    st.info("No runs yet: launch one above. It keeps running if you close this tab.")
    st.stop()
ids = list(labels)
ss.run_id = ss.get("run_id") or ids[0]
run_id = st.selectbox("Watching run", ids, index=ids.index(ss.run_id), format_func=labels.get)
if run_id != ss.run_id or st.query_params.get("run") != run_id:
    ss.run_id = run_id
    st.query_params["run"] = run_id


if api.get_run(me, run_id)["status"] in api.UNFINISHED:
    status_panel(run_id)
r = charts(run_id)
if r["status"] not in api.UNFINISHED:
    c1, c2 = st.columns([1, 3])
    if r["mine"]:
        shared = c1.toggle("Share with the class", value=bool(r["published"]), key=f"pub-{run_id}",
                           help="Everyone on this server can then watch this run and try its model (read-only).")
        if shared != bool(r["published"]):
            api.publish_run(me, run_id, shared)
    with st.expander("Replay the feature map over epochs"):
        st.plotly_chart(plots.embedding_animation(api.all_embeddings(me, run_id)), key="replay")
    with st.expander("How the reported epoch was chosen"):
        st.caption("A run may not pick its epoch by target accuracy: in real use the target has no labels. "
                   "These scores read only unlabelled target images (or held-out source images); where they "
                   "rise and fall with the target accuracy, they are trustworthy selectors for this setting.")
        st.plotly_chart(plots.selection_scores(history(run_id), r["best_epoch"]), key="selection")
