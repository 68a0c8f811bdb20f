"""Step 4: launch a run and watch it live (the run lives in the run store, not in this page)."""
import streamlit as st

from pages._ui import cfg, error_box
from tl_core import app_api as api
from tl_core import cancel, embedding_epochs, get_run, list_runs, read_embedding, read_metrics
from tl_core import plots

st.title("4 · Train: launch, and watch knowledge transfer")
ss = st.session_state
if "run" in st.query_params and st.query_params["run"] != ss.get("run_id"):
    ss.run_id = st.query_params["run"]

valid, why = api.validate(cfg())
with st.container(border=True):
    if valid is not None:
        st.markdown(api.describe_plan(valid))
        st.caption(f"Estimated time: about {api.estimate_seconds(valid) / 60:.1f} min on this machine.")
    else:
        st.error(f"Cannot launch yet: {why}", icon=":material/error:")
    if st.button("Launch", type="primary", disabled=valid is None, help=why or "Queue this run"):
        try:
            ss.run_id = api.submit(cfg(), session=ss.session_id)
            st.query_params["run"] = ss.run_id
        except Exception as e:  # noqa: BLE001
            error_box(e)

recent = list_runs(limit=50)
ids = [r["id"] for r in recent]
if not ids:
    st.info("No runs yet: launch one above. It keeps running if you close this tab.")
    st.stop()
if ss.get("run_id") not in ids:
    ss.run_id = ids[0]
labels = {r["id"]: api.run_label(r) for r in recent}
run_id = st.selectbox("Watching run", ids, index=ids.index(ss.run_id), format_func=labels.get)
if run_id != ss.run_id:
    ss.run_id = run_id
    st.query_params["run"] = run_id


def history(run_id):
    """Per-epoch metrics, read incrementally from the store (only what is new since the last read)."""
    key = f"hist-{run_id}"
    h, cursor = ss.get(key, ([], 0))
    new, cursor = read_metrics(run_id, cursor)
    if new:
        done = {m["epoch"] for m in new}
        h = [m for m in h if m["epoch"] not in done] + new
        h.sort(key=lambda m: m["epoch"])
    ss[key] = (h, cursor)
    return h


def render(run_id):
    """Draw the run's state and charts; returns its status."""
    r = get_run(run_id)
    h = history(run_id)
    status, p = r["status"], r["progress"]
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
    c1.markdown(f"**{r['method']}** · {r['source']} → {r['target']} · {r['backbone']} · status **{status}**")
    if status in ("queued", "starting", "running") and c2.button("Stop", key=f"stop-{status}"):
        cancel(run_id)
    if h:
        c3.metric("Target accuracy", f"{h[-1]['target_acc']:.1%}")
        c4.metric("Source accuracy", f"{h[-1]['source_acc']:.1%}")
    if status == "queued":
        st.info(f"Waiting in the queue (position {r['queue_position']}): one run trains at a time on this machine.")
    if p:
        frac = p["step"] / max(p["total_steps"], 1)
        eta = int(p["eta_s"]) if status == "running" else 0
        st.progress(min(frac, 1.0), text=f"epoch {p['epoch']}/{r['epochs']} · step {p['step']}/{p['total_steps']} "
                                          f"· {p['images_per_s']:,.0f} images/s · ETA {eta // 60}:{eta % 60:02d}")
    if status in ("failed", "interrupted", "cancelled") and r["reason"]:
        (st.error if status == "failed" else st.warning)(r["reason"])
    if status == "finished":
        sel = r["config"]["train"].get("selection", "last")
        st.success(f"Finished: target accuracy {r['target_acc']:.1%} (source {r['source_acc']:.1%}) in "
                   f"{r['wall_s']:.0f} s, reported from epoch {r['best_epoch']} (selection: {sel}, "
                   f"which reads no target label).")
    a, b = st.columns(2)
    a.plotly_chart(plots.loss_curves(h), key="loss")
    b.plotly_chart(plots.accuracy_curves(h), key="acc")
    a, b = st.columns([3, 2])
    with a:
        epochs = embedding_epochs(run_id)
        colour = st.segmented_control("Colour by", ["domain", "class"], default="domain", key="colour_by")
        ep = st.select_slider("Epoch", epochs, value=epochs[-1], key=f"ep-{len(epochs)}") if len(epochs) > 1 else None
        st.plotly_chart(plots.embedding_scatter(read_embedding(run_id, ep), classes(h),
                                                colour_by=colour or "domain"), key="emb")
    with b:
        st.plotly_chart(plots.domain_gap(h), key="gap")
        if h:
            st.plotly_chart(plots.confusion_matrix(h[-1]["target_confusion"], classes(h)), key="cm")
    return status


def classes(h):
    return h[-1].get("classes") if h else None


@st.fragment(run_every=1.0)
def live():
    if render(ss.run_id) not in ("queued", "starting", "running"):
        st.rerun()  # stop polling once the run has ended


if get_run(run_id)["status"] in ("queued", "starting", "running"):
    live()
else:
    render(run_id)
    with st.expander("Replay the feature map over epochs"):
        st.plotly_chart(plots.embedding_animation(api.all_embeddings(run_id)), key="replay")
    with st.expander("How the reported epoch was chosen"):
        st.caption("A run may not pick its epoch by target accuracy: in real use the target has no labels. "
                   "These scores read only unlabelled target images (or held-out source images); where they "
                   "rise and fall with the target accuracy, they are trustworthy selectors for this setting.")
        st.plotly_chart(plots.selection_scores(history(run_id), get_run(run_id)["best_epoch"]), key="selection")
