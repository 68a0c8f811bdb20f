"""Step 4: launch a run and watch it live (the run lives in the run store, not in this page).

Watching is cheap: a small fragment polls the run's progress (a few numbers) and redraws only
itself; the charts are drawn once per epoch, when a new epoch's metrics (and feature map) land."""
import streamlit as st

from pages._ui import cfg, error_box, escape_markdown, keep_draft_in_url, page_setup, session
from tl_core import NotVisible, StoreBusy
from tl_core import app_api as api
from tl_core import plots

st.title("4 · Train: launch, and watch knowledge transfer")
page_setup()
keep_draft_in_url()  # a reload keeps this session's choices
ss, me = st.session_state, session()

valid, why = api.validate(cfg(), session())
if valid is not None and (why := api.allowed(me, valid)):
    valid = None
what = (cfg()["data"]["source"], cfg()["data"]["target"], cfg()["model"]["backbone"], cfg()["method"]["name"])
if valid is not None and not ss.get("schedule_chosen") and ss.get("auto_planned") != what:
    # the default is a plan the server will run: a draft whose schedule nobody chose is fitted to the
    # time budget (2 min unless changed below) before it is offered, never offered and then refused
    wanted = float(ss.get("budget", 2.0)) * 60
    ss.auto_planned = what  # once per pair, backbone and method
    if api.estimate_seconds(valid) > 1.25 * wanted:
        planned, notes = api.plan_for_budget(cfg(), wanted)
        if planned != cfg():
            st.session_state.cfg = planned
            ss.plan_notes = [f"fitted to the {wanted / 60:g}-min budget by itself"] + notes
            keep_draft_in_url()
            st.rerun()
with st.container(border=True):
    if valid is not None:
        st.markdown(api.describe_plan(valid))
        est = api.estimate_seconds(valid)
        limit = api.run_limit_s(me)
        c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
        c1.caption(f"Estimated time: about {est / 60:.1f} min on this machine.")
        if limit and est > limit:  # never offer what the server would stop half-way
            why = (f"about {est / 60:.0f} min, longer than the {limit / 60:.0f}-min limit per run on this server "
                   f"(TL_QUOTA_RUN_WALL_S): fit the plan to a budget below it.")
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


def history(run_id):
    """Per-epoch metrics, read incrementally from the store (only what is new since the last read)."""
    key = f"hist-{run_id}"
    h, cursor = ss.get(key, ([], 0))
    new, cursor = api.read_metrics(me, run_id, cursor)
    if new:
        done = {m["epoch"] for m in new}
        h = sorted([m for m in h if m["epoch"] not in done] + new, key=lambda m: m["epoch"])
    ss[key] = (h, cursor)
    return h


def classes(h):
    return h[-1].get("classes") if h else None


@st.fragment(run_every=3.0)
def status_panel(run_id: str) -> None:
    """Status, progress and the current loss values; a full redraw when an epoch ends or the run does."""
    try:
        r = api.get_run(me, run_id)
    except StoreBusy as e:  # another program holds the store for a moment: keep polling
        st.caption(escape_markdown(e))
        return
    status, p = r["status"], r["progress"]
    seen = (r["epoch"], status)
    if ss.get(f"seen-{run_id}", seen) != seen:
        ss[f"seen-{run_id}"] = seen
        st.rerun()  # new metrics or a new state: redraw the charts once
    ss[f"seen-{run_id}"] = seen
    c1, c2 = st.columns([4, 1])
    who = "" if r["mine"] else " · shared with you (read-only)"
    c1.markdown(escape_markdown(f"{r['method']} · {api.domain_label(r['source'])} → {api.domain_label(r['target'])} · "
                      f"{r['backbone']} · status {status}{who}"))
    if status in api.UNFINISHED and r["mine"] and c2.button("Stop", key=f"stop-{run_id}"):
        try:
            api.cancel_run(me, run_id)
        except Exception as e:  # noqa: BLE001
            error_box(e)
    if status == "queued" and r["attached"]:
        st.info(escape_markdown(r["reused_words"][:1].upper() + r["reused_words"][1:] + "."),
                icon=":material/link:")
    elif status == "queued":
        st.info(f"Waiting in the queue (position {r['queue_position']}): one run trains at a time on this machine.")
    if p:
        frac = p["step"] / max(p["total_steps"], 1)
        eta = int(p["eta_s"]) if status == "running" else 0
        st.progress(min(frac, 1.0), text=f"epoch {p['epoch']}/{r['epochs']} · step {p['step']}/{p['total_steps']} "
                                          f"· {p['images_per_s']:,.0f} images/s · ETA {api.clock(eta)}")
        if status == "running" and p["losses"]:
            st.caption("now: " + " · ".join(f"{k} {v:.3f}" for k, v in p["losses"].items()))


def charts(run_id: str) -> dict:
    """The run's outcome and charts, drawn from what the store holds now."""
    r = api.get_run(me, run_id)
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
            api.resume_run(me, run_id)
            st.rerun()
        except Exception as e:  # noqa: BLE001
            error_box(e)
    if status == "finished" and r["target_acc"] is not None:
        sel = r["config"]["train"].get("selection", "last")
        ci = r.get("target_acc_ci")
        st.success(f"Finished: target accuracy {r['target_acc']:.1%}"
                   + (f" (95% interval {ci[0]:.1%}–{ci[1]:.1%})" if ci else "")
                   + (f", source {r['source_acc']:.1%}" if r["source_acc"] is not None else "")
                   + (f", in {r['wall_s']:.0f} s" if r["wall_s"] is not None else "")
                   + f"; reported from epoch {r['best_epoch']} (selection: {sel}, which reads no target label).")
        est, eci = r.get("target_acc_estimate"), r.get("target_acc_estimate_ci")
        if est is not None:
            st.caption(f"Estimated without target labels: about {est:.0%}"
                       + (f" [{eci[0]:.0%}, {eci[1]:.0%}]" if eci else "")
                       + " (average thresholded confidence, fitted on the source's hold-out images; beside the "
                         "measured accuracy it is its own check, and on images without labels it is the only "
                         "reading).")
        st.caption(escape_markdown(api.reading_words(r)))
        if r["reused_words"]:
            st.info(escape_markdown(r["reused_words"][:1].upper() + r["reused_words"][1:] + "."), icon=":material/link:")
            if st.button("Train again", key=f"again-{run_id}", icon=":material/replay:",
                         help="Train this config anew instead of reusing the identical run's numbers."):
                try:
                    ss.run_id = api.train_again(me, run_id)
                    st.query_params["run"] = ss.run_id
                    st.rerun()
                except Exception as e:  # noqa: BLE001
                    error_box(e)
    a, b = st.columns(2)
    a.plotly_chart(plots.loss_curves(h), key="loss")
    b.plotly_chart(plots.accuracy_curves(h), key="acc")
    sampled = next((x for x in h if x.get("sampled")), None)
    if sampled:
        b.caption(f"Epochs before the last read a fixed sample of each test split ({sampled['target_n']:,} target "
                  "images), which is quicker and decides nothing; the last epoch reads every image.")
    a, b = st.columns([3, 2])
    with a:
        epochs = api.embedding_epochs(me, run_id)
        colour = st.segmented_control("Colour by", ["domain", "class", "correct"], default="domain", key="colour_by",
                                      help="correct: green where the model's class is right, red where it is not")
        ep = st.select_slider("Epoch", epochs, value=epochs[-1], key=f"ep-{len(epochs)}") if len(epochs) > 1 else None
        picked = st.plotly_chart(plots.embedding_scatter(api.read_embedding(me, run_id, ep), classes(h),
                                                         colour_by=colour or "domain"),
                                 key=f"emb-{run_id}", on_select="rerun", selection_mode="points")
    with b:
        st.plotly_chart(plots.domain_gap(h), key="gap")
        point = picked_point(picked)
        shown = api.point_image(me, run_id, ep, point) if point is not None else None
        if shown and shown["image"] is not None:
            st.image(shown["image"], width=96, caption=escape_markdown(
                f"{shown['domain']} image · class {shown['label']} · predicted {shown['predicted']}"))
        elif shown:
            st.caption(escape_markdown(f"{shown['domain']} image · class {shown['label']} · predicted "
                                       f"{shown['predicted']} (its picture is not kept on this server)"))
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
    rep = api.class_report(me, run_id, split)
    if rep is None:  # a run trained before per-image predictions were kept: the counts alone
        last = h[-1]
        st.plotly_chart(plots.confusion_matrix(last["target_confusion"], classes(h),
                                               title=f"Target confusion, epoch {last['epoch']}"), key="cm")
        st.caption("This run was trained before TransferLab kept each image's prediction: the counts only.")
        return
    names = rep["classes"]
    left, right = st.columns([3, 2])
    title = (f"{split.capitalize()} confusion, epoch {rep['epoch']}"
             + (f" ({rep['n']:,} sampled images)" if rep["sampled"] else f" ({rep['n']:,} images)"))
    chosen = picked_point(left.plotly_chart(plots.confusion_matrix(rep["matrix"], names, title=title),
                                            key=f"cm-{run_id}-{split}", on_select="rerun", selection_mode="points"))
    with right:
        st.dataframe([{"class": ("⚠ " if r["collapsed"] else "") + r["class"], "right": f"{r['right']}/{r['n']}",
                       "accuracy": f"{100 * r['acc']:.0f} %" if r["n"] else "–",
                       "95% interval": f"{100 * r['ci'][0]:.0f}–{100 * r['ci'][1]:.0f} %" if r["ci"] else "–",
                       "most others →": r["most_went_to"] or "–"} for r in rep["rows"]],
                     hide_index=True, width="stretch")
        collapsed = [api.class_row_words(r) for r in rep["rows"] if r["collapsed"]]
        if collapsed:
            st.warning(f"{'This class' if len(collapsed) == 1 else f'{len(collapsed)} classes'} collapsed (at most "
                       f"{api.COLLAPSE_AT:.0%} right), whatever the overall accuracy says: "
                       + escape_markdown("; ".join(collapsed)) + ".", icon=":material/warning:")
    m = rep["matrix"]
    cells = sorted(((i, j) for i in range(len(m)) for j in range(len(m)) if m[i][j]),
                   key=lambda c: (c[0] == c[1], -m[c[0]][c[1]]))  # the confusions first, the largest first
    labels = {c: f"true {names[c[0]]} → predicted {names[c[1]]} ({m[c[0]][c[1]]:,})" for c in cells}
    pick = st.selectbox("Open a cell (or click one in the matrix)", [None, *cells], format_func=lambda c: "—" if c is None
                        else labels[c], key=f"cell-{run_id}-{split}")
    cell = tuple(int(v) for v in chosen) if chosen is not None and len(chosen) == 2 else pick
    if cell is None:
        return
    try:
        res = api.cell_images(me, run_id, split, *cell)
    except Exception as e:  # noqa: BLE001
        error_box(e)
        return
    cell_name = escape_markdown(f"true {res['true']}, predicted {res['predicted']}")
    st.markdown(f"**{cell_name}**: {res['count']:,} image"
                f"{'s' if res['count'] != 1 else ''} in this cell (epoch {res['epoch']})"
                + (f", the {len(res['images'])} most confident shown" if res["count"] > len(res["images"]) else "")
                + "; each with the model's probability for the predicted class.")
    if not res["available"]:
        st.info("This run's thumbnails are not on this server (it trained elsewhere, or they were cleared): the "
                "counts only.")
    elif res["images"]:
        st.image(res["images"], width=64, caption=[f"{c:.0%}" for c in res["confidence"]])


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
