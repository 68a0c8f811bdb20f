"""Experiments: one click runs a whole comparison (strategies × seeds, with the source-only baseline)
and ends in a verdict. The setup lives in the URL (`?preset=quickstart&seeds=0,1`), so a teacher
shares a link that opens the same experiment ready to launch; `?experiment=ID` opens one."""
import streamlit as st

from pages._ui import error_box, escape_markdown, page_setup, session
from tl_core import StoreBusy
from tl_core import app_api as api
from tl_core import plots

st.title("Experiments: does transfer help, and which way?")
page_setup()
ss, me, q = st.session_state, session(), st.query_params
PRESETS = {p["name"]: p for p in api.experiment_presets()}


def _fmt(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


# -- setting one up -----------------------------------------------------------------------------

def setup() -> None:
    names = list(PRESETS) + ["custom"]
    current = q.get("preset") or ("custom" if q.get("methods") else api.first_visit_preset())
    if current not in names:
        current = api.first_visit_preset()
    choice = st.segmented_control("Question", names, default=current, key=f"preset-{current}",
                                  format_func=lambda n: PRESETS[n]["title"] if n in PRESETS else "Your own grid")
    if choice and choice != current:
        q.clear()
        if choice == "custom":
            q.update({"source": "usps", "target": "mnist", "methods": "dann,coral", "seeds": "0"})
        else:
            q["preset"] = choice
        st.rerun()
    if current == "custom":
        custom_form()
    spec, why = api.experiment_from_query({k: q.get(k) for k in ("preset", "seeds", "source", "target", "methods")}, me)
    if spec is None:
        st.error(escape_markdown(f"This link does not describe an experiment: {why}"), icon=":material/link_off:")
        return
    if current in PRESETS:
        p = PRESETS[current]
        st.markdown(f"**{escape_markdown(p['title'])}** {escape_markdown(p['question'])}")
        with st.expander("The lesson: what to look at, and what the result means"):
            st.markdown(escape_markdown(p["lesson"]))
    plan = api.plan_experiment(spec, me)
    with st.container(border=True):
        if plan["why"]:
            st.error(escape_markdown(f"Cannot launch: {plan['why']}"), icon=":material/error:")
        else:
            st.markdown(escape_markdown(f"{plan['source']} → {plan['target']}: {', '.join(plan['strategies'])} × seeds "
                              f"{', '.join(map(str, plan['seeds']))} = {plan['runs']} runs, one after another."))
            st.caption(f"About {_fmt(plan['estimate_s'])} on this machine. Share this setup: copy the page's "
                       f"address, it opens the same experiment ready to launch.")
        seeds = st.text_input("Seeds", ",".join(map(str, spec["seeds"])), key=f"seeds-{current}",
                              help="Every strategy runs once per seed; the verdict compares the gain with the "
                                   "spread between seeds. Up to 5.")
        if seeds != ",".join(map(str, spec["seeds"])):
            q["seeds"] = seeds.replace(" ", "")
            st.rerun()
        if st.button("Launch experiment", type="primary", disabled=bool(plan["why"]), key="launch"):
            open_launched(lambda: api.launch_experiment(spec, me))
    mine = api.list_experiments(me)
    if mine:
        st.subheader("Experiments you can open")
        for e in mine[:12]:
            who = "yours" if e["mine"] else "shared with you"
            st.page_link("pages/0_experiments.py", label=escape_markdown(f"{e['name']} · {e['status']} · {e['runs']} runs · "
                                                               f"{e['created']} · {who}"),
                         query_params={"experiment": e["id"]}, icon=":material/science:")


def open_launched(launch) -> None:
    """Launch (a callable returning the experiment id) and open the experiment; a refusal in words."""
    try:
        exp_id = launch()
    except Exception as e:  # noqa: BLE001
        error_box(e)
        return
    q.clear()
    q["experiment"] = exp_id
    st.rerun()


def custom_form() -> None:
    doms = [d["name"] for d in api.domain_choices(me)]
    methods = [m["name"] for m in api.method_cards() if m["name"] != "source_only"]
    c1, c2, c3 = st.columns([1, 1, 2])
    src = c1.selectbox("Source", doms, index=doms.index(q.get("source")) if q.get("source") in doms else 0,
                       format_func=api.domain_label)
    tgt = c2.selectbox("Target", doms, index=doms.index(q.get("target")) if q.get("target") in doms else 0,
                       format_func=api.domain_label)
    chosen = [m for m in (q.get("methods") or "").split(",") if m in methods]
    picked = c3.multiselect("Strategies (source only is always there)", methods, default=chosen,
                            max_selections=7)
    new = {"source": src, "target": tgt, "methods": ",".join(picked)}
    if any(q.get(k) != v for k, v in new.items()):
        q.update(new)
        st.rerun()
    advice_panel(src, tgt)


def advice_panel(src: str, tgt: str) -> None:
    """Ask before training: the advisor ranks (backbone, freeze depth, method) for this pair from frozen
    features, with predicted accuracies and intervals, and one click launches the grid that checks it."""
    with st.expander("Ask the advisor: which backbone, freeze depth and method are likely to work here?",
                     expanded=bool(ss.get("advice"))):
        st.caption("It scores each candidate's frozen features (LogME, H-score, k-NN on the source labels; a "
                   "centroid margin, the domain gap and the source head's certainty on the unlabelled target) "
                   "and reads each method's target accuracy off a predictor fitted on measured runs. About a "
                   "minute the first time for a pair, seconds after.")
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
        if adv.get("warning"):
            st.warning(escape_markdown(adv["warning"]), icon=":material/report:")
        recs = adv["recommendations"]
        if recs:
            rows = [{"candidate": r["candidate"], "method": r["method"],
                     "predicted target accuracy": f"{100 * r['predicted_acc']:.1f} % "
                                                  f"[{100 * r['predicted_acc_ci'][0]:.0f}, {100 * r['predicted_acc_ci'][1]:.0f}]",
                     "gain over source only": "" if r["method"] == "source_only" else
                     f"{100 * r['predicted_gain']:+.1f} [{100 * r['predicted_gain_ci'][0]:+.0f}, "
                     f"{100 * r['predicted_gain_ci'][1]:+.0f}]"} for r in recs[:8]]
            st.dataframe(rows, hide_index=True, width="stretch")
            st.markdown(escape_markdown("Why: " + " ".join(recs[0]["reasons"])))
            st.plotly_chart(plots.advice_bars(recs), width="stretch", key="advice-bars")
        with st.popover("The scores behind it"):
            st.dataframe([{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                           if k not in ("backbone", "freeze")} for row in adv["scores"]], hide_index=True)
        tr = adv.get("track_record") or {}
        if tr:
            st.caption(f"The predictor's own record, each pair held out of its fitting ({tr['cells']} measured runs "
                       f"over {tr['pairs']} pairs): median Kendall τ {tr['kendall_tau_median']:.2f}, AUROC of "
                       f"'beats source only' {tr['auroc_beats_source_only'] or float('nan'):.2f}. "
                       f"docs/BENCHMARKS.md has every cell.")
            st.plotly_chart(plots.advisor_track_record(api.advisor_track_record().get("held_out", [])), width="stretch",
                            key="advisor-record")
        if recs and st.button("Launch the check: recommended, runner-up and source only × 3 seeds",
                              key="launch-advised", type="primary"):
            open_launched(lambda: api.launch_advised(me, adv))


# -- watching and reading one -------------------------------------------------------------------

@st.fragment(run_every=3.0)
def live(exp_id: str) -> None:
    """The grid's progress; the results below are redrawn when a run finishes."""
    try:
        p = api.experiment_progress(me, exp_id)
    except StoreBusy as e:
        st.caption(escape_markdown(e))
        return
    seen = (p["runs_done"], p["status"])
    if ss.get(f"xseen-{exp_id}", seen) != seen:
        ss[f"xseen-{exp_id}"] = seen
        st.rerun()
    ss[f"xseen-{exp_id}"] = seen
    st.progress(min(p["fraction"], 1.0), text=f"{p['runs_done']} of {p['runs']} runs done · "
                                              f"{100 * p['fraction']:.0f}% of the grid · ETA {_fmt(p['eta_s'])}")


def show(exp_id: str) -> None:
    v = api.view_experiment(me, exp_id)
    spec, p = v["spec"], v["progress"]
    title = PRESETS[v["preset"]]["title"] if v["preset"] in PRESETS else v["name"]
    st.subheader(escape_markdown(f"{title} · {api.domain_label(spec['source'])} → {api.domain_label(spec['target'])}"))
    c1, c2, c3 = st.columns([2, 1, 1])
    c1.caption(escape_markdown(f"Experiment {v['id']} · {len(spec['strategies'])} strategies × seeds "
                     f"{', '.join(map(str, spec['seeds']))} · status {p['status']}"
                     + ("" if v["mine"] else " · shared with you (read-only)")))
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
        live(exp_id)
    helped = any(r["role"] == "" and (r["gain_ci"] or [0])[0] > 0 for r in v["results"])
    # green only for a verdict its interval supports: one seed of 70 images reads as "cannot tell"
    box = ((st.success if helped else st.warning) if v["verdict_certain"] else st.info) \
        if p["status"] == "finished" else st.info
    box(api.escape_markdown(v["verdict"]).replace("\\*\\*", "**"), icon=":material/gavel:")
    for r in v["results"]:
        for f in r["flags"]:
            (st.error if "negative transfer" in f else st.warning)(escape_markdown(f"{r['strategy']}: {f}"))
    base_name = next((r["strategy"] for r in v["results"] if r["role"] == "baseline"), "source only")
    gain_col = f"gain over {base_name} (95% interval)"
    rows = [{"strategy": r["strategy"],
             "target accuracy": "—" if r["target_acc_mean"] is None else
             f"{100 * r['target_acc_mean']:.1f} ± {100 * r['target_acc_std']:.1f} %",
             gain_col: "baseline" if r["role"] == "baseline" else "—" if r["gain"] is None
             else f"{100 * r['gain']:+.1f} points" + ("" if not r["gain_ci"] else
                                                       f" ({100 * r['gain_ci'][0]:+.1f} to {100 * r['gain_ci'][1]:+.1f})"),
             "seeds done": f"{r['n_seeds']} of {r['runs_total']}",
             "published": "—" if r["reference"] is None else f"{100 * r['reference']:.1f} %",
             "source accuracy": "—" if r["source_acc_mean"] is None else f"{100 * r['source_acc_mean']:.1f} %",
             "time per run": "—" if r["wall_s_mean"] is None else f"{r['wall_s_mean']:.0f} s"} for r in v["results"]]
    st.dataframe(rows, hide_index=True)
    a, b = st.columns(2)
    a.plotly_chart(plots.experiment_bars(v["results"], v["reference_source"]), key="xbars")
    curves = {f"{r['strategy']} · seed {r['seed']}": v["histories"][r["id"]] for r in v["runs"]
              if r["id"] in v["histories"]}
    b.plotly_chart(plots.overlay_accuracy(curves), key="xcurves")
    maps = [(r["strategy"], r["id"]) for r in v["runs"] if r["id"] in v["histories"] and r["seed"] == spec["seeds"][0]]
    if maps:
        st.caption("Feature maps at the last epoch (seed " + str(spec["seeds"][0]) + "): blue source, orange target. "
                   "Aligned domains overlap; red rings are misclassified target images.")
        cols = st.columns(min(len(maps), 3))
        for i, (label, rid) in enumerate(maps):
            with cols[i % len(cols)]:
                st.markdown(f"**{escape_markdown(label)}**")
                h = v["histories"][rid]
                fig = plots.embedding_scatter(api.read_embedding(me, rid), h[-1].get("classes") if h else None)
                fig.update_layout(showlegend=False)  # the caption above says what the colours are; columns are narrow
                st.plotly_chart(fig, key=f"map-{rid}")
    if v["preset"] in PRESETS:
        with st.expander("The lesson"):
            st.markdown(escape_markdown(PRESETS[v["preset"]]["lesson"]))
    with st.expander("Runs of this experiment (open one to see its loss terms and feature map over epochs)"):
        for r in v["runs"]:
            acc = "" if r["target_acc"] is None else f" · target {100 * r['target_acc']:.1f}%"
            why = f" · {r['reason']}" if r["reason"] and r["status"] != "finished" else ""
            st.page_link("pages/4_train.py", label=escape_markdown(f"{r['strategy']} · seed {r['seed']} · {r['status']}{acc}{why}"),
                         query_params={"run": r["id"]}, icon=":material/monitoring:")
    c1, c2, c3 = st.columns(3)
    c1.download_button("Download results (JSON)", api.export_experiment(me, exp_id), f"transferlab-{exp_id}.json",
                       mime="application/json")
    if v["mine"] and not active:
        shared = c2.toggle("Share with the class", value=v["published"], key=f"xpub-{exp_id}",
                           help="Everyone on this server can then open this experiment (read-only).")
        if shared != v["published"]:
            api.publish_experiment(me, exp_id, shared)
            st.rerun()
        sure = c3.checkbox("Yes, delete this experiment and its runs", key=f"xsure-{exp_id}")
        if c3.button("Delete experiment", disabled=not sure, key="xdel"):
            try:
                api.delete_experiment(me, exp_id)
                q.clear()
                st.rerun()
            except Exception as e:  # noqa: BLE001
                error_box(e)


exp = q.get("experiment")
if exp:
    try:
        show(exp)
    except StoreBusy:
        raise
    except Exception as e:  # noqa: BLE001 - an unknown or hidden id, or a store problem: say so, offer a way on
        error_box(e)
        if st.button("Set up a new experiment"):
            q.clear()
            st.rerun()
else:
    setup()
