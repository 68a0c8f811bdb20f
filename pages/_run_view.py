"""The Train page's view of one run: its live status, its charts, and the images behind its numbers (the
confusion of the epoch it reports, a row per class, a cell's images, a map point's image). Widgets only: the
words, rows and choices come from `tl_core.app.api`."""
import streamlit as st

from pages._ui import error_box, escape_markdown, session
from tl_core import StoreBusy
from tl_core.app import api
from tl_core.app import plots


def history(run_id):
    """Per-epoch metrics, read incrementally from the store (only what is new since the last read)."""
    key = f"hist-{run_id}"
    h, cursor = st.session_state.get(key, ([], 0))
    new, cursor = api.read_metrics(session(), run_id, cursor)
    if new:
        done = {m["epoch"] for m in new}
        h = sorted([m for m in h if m["epoch"] not in done] + new, key=lambda m: m["epoch"])
    st.session_state[key] = (h, cursor)
    return h


def classes(h):
    return h[-1].get("classes") if h else None


@st.fragment(run_every=3.0)
def status_panel(run_id: str) -> None:
    """Status, progress and the current loss values; a full redraw when an epoch ends or the run does."""
    try:
        r = api.get_run(session(), run_id)
    except StoreBusy as e:  # another program holds the store for a moment: keep polling
        st.caption(escape_markdown(e))
        return
    status = r["status"]
    seen = (r["epoch"], status)
    if st.session_state.get(f"seen-{run_id}", seen) != seen:
        st.session_state[f"seen-{run_id}"] = seen
        st.rerun()  # new metrics or a new state: redraw the charts once
    st.session_state[f"seen-{run_id}"] = seen
    c1, c2 = st.columns([4, 1])
    c1.markdown(api.status_line(r))
    if status in api.UNFINISHED and r["mine"] and c2.button("Stop", key=f"stop-{run_id}"):
        try:
            api.cancel_run(session(), run_id)
        except Exception as e:  # noqa: BLE001
            error_box(e)
    if waits := api.queue_words(r):
        st.info(waits, icon=":material/link:" if r["attached"] else None)
    if bar := api.progress_line(r):
        st.progress(bar[0], text=bar[1])
        if bar[2]:
            st.caption(bar[2])


def charts(run_id: str) -> dict:
    """The run's outcome and charts, drawn from what the store holds now."""
    r = api.get_run(session(), run_id)
    h = history(run_id)
    status = r["status"]
    if h:
        c3, c4, _ = st.columns([1, 1, 3])
        c3.metric("Target accuracy", f"{h[-1]['target_acc']:.1%}")
        c4.metric("Source accuracy", f"{h[-1]['source_acc']:.1%}")
    if status in ("failed", "interrupted", "cancelled") and r["reason"]:
        (st.error if status == "failed" else st.warning)(escape_markdown(r["reason"]))
    if status in ("failed", "interrupted", "cancelled") and r["mine"] and st.button(
            "Resume from the last checkpoint", key=f"resume-{run_id}", icon=":material/play_arrow:"):
        try:
            api.resume_run(session(), run_id)
            st.rerun()
        except Exception as e:  # noqa: BLE001
            error_box(e)
    if status == "finished" and r["target_acc"] is not None:
        done, estimated = api.outcome_words(r)
        st.success(done)
        if estimated:
            st.caption(estimated)
        st.caption(escape_markdown(api.reading_words(r)))
        if r["reused_words"]:
            st.info(api.reused_sentence(r), icon=":material/link:")
            if st.button("Train again", key=f"again-{run_id}", icon=":material/replay:",
                         help="Train this config anew instead of reusing the identical run's numbers."):
                try:
                    st.session_state.run_id = api.train_again(session(), run_id)
                    st.query_params["run"] = st.session_state.run_id
                    st.rerun()
                except Exception as e:  # noqa: BLE001
                    error_box(e)
    a, b = st.columns(2)
    a.plotly_chart(plots.loss_curves(h), key="loss")
    b.plotly_chart(plots.accuracy_curves(h), key="acc")
    if sampled := api.sampled_words(h):
        b.caption(sampled)
    a, b = st.columns([3, 2])
    with a:
        epochs = api.embedding_epochs(session(), run_id)
        colour = st.segmented_control("Colour by", ["domain", "class", "correct"], default="domain", key="colour_by",
                                      help="correct: green where the model's class is right, red where it is not")
        ep = st.select_slider("Epoch", epochs, value=epochs[-1], key=f"ep-{len(epochs)}") if len(epochs) > 1 else None
        picked = st.plotly_chart(plots.embedding_scatter(api.read_embedding(session(), run_id, ep), classes(h),
                                                         colour_by=colour or "domain"),
                                 key=f"emb-{run_id}", on_select="rerun", selection_mode="points")
    with b:
        st.plotly_chart(plots.domain_gap(h), key="gap")
        point = picked_point(picked)
        shown = api.point_image(session(), run_id, ep, point) if point is not None else None
        if shown and shown["image"] is not None:
            st.image(shown["image"], width=96, caption=api.point_words(shown))
        elif shown:
            st.caption(api.point_words(shown))
        else:
            st.caption("Click a point of the map to see its image, as the model saw it.")
    if h:
        images_behind(run_id, h)
    return r


def picked_point(event):
    """The `customdata` of the first point a chart's selection holds, or None."""
    try:
        points = event["selection"]["points"]
    except (TypeError, KeyError):
        return None
    return points[0].get("customdata") if points else None


def images_behind(run_id: str, h: list) -> None:
    """The confusion of the reported epoch (the last one evaluated while the run trains): a cell opens its
    images, and a row per class says how many it got right, with its interval and where the rest went."""
    st.subheader("The images behind the numbers")
    split = st.segmented_control("Domain", ["target", "source"], default="target", key=f"cm-split-{run_id}") or "target"
    rep = api.class_report(session(), run_id, split)
    if rep is None:  # a run trained before per-image predictions were kept: the counts alone
        last = h[-1]
        st.plotly_chart(plots.confusion_matrix(last["target_confusion"], classes(h),
                                               title=f"Target confusion, epoch {last['epoch']}"), key="cm")
        st.caption("This run was trained before TransferLab kept each image's prediction: the counts only.")
        return
    left, right = st.columns([3, 2])
    chosen = picked_point(left.plotly_chart(plots.confusion_matrix(rep["matrix"], rep["classes"],
                                                                   title=api.confusion_title(rep)),
                                            key=f"cm-{run_id}-{split}", on_select="rerun", selection_mode="points"))
    right.dataframe(api.class_table(rep), hide_index=True, width="stretch")
    if collapsed := api.collapse_words(rep):
        right.warning(collapsed, icon=":material/warning:")
    cells = api.cell_choices(rep)
    pick = st.selectbox("Open a cell (or click one in the matrix)", [None, *cells], key=f"cell-{run_id}-{split}",
                        format_func=lambda c: "—" if c is None else cells[c])
    cell = tuple(int(v) for v in chosen) if chosen is not None and len(chosen) == 2 else pick
    if cell is None:
        return
    try:
        res = api.cell_images(session(), run_id, split, *cell)
    except Exception as e:  # noqa: BLE001
        error_box(e)
        return
    st.markdown(api.cell_words(res))
    if not res["available"]:
        st.info("This run's thumbnails are not on this server (it trained elsewhere, or they were cleared): the "
                "counts only.")
    elif res["images"]:
        st.image(res["images"], width=64, caption=[f"{c:.0%}" for c in res["confidence"]])
