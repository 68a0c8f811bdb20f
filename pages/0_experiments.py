"""Experiments: one click runs a whole comparison (strategies × seeds, with the source-only baseline)
and ends in a verdict. The setup lives in the URL (`?preset=quickstart&seeds=0,1`), so a teacher
shares a link that opens the same experiment ready to launch; `?experiment=ID` opens one."""
import streamlit as st

from pages._advisor import advice_panel
from pages._experiment import show
from pages._ui import error_box, escape_markdown, page_setup, session
from tl_core import StoreBusy, TLError
from tl_core.app import api

st.title("Experiments: does transfer help, and which way?")
page_setup()
me, q = session(), st.query_params
PRESETS = {p["name"]: p for p in api.experiment_presets()}


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
    spec, why = api.experiment_from_query({k: q.get(k) for k in ("preset", "seeds", "source", "target", "methods", "budget")}, me)
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
            what, when = api.plan_words(plan)
            st.markdown(escape_markdown(what))
            st.caption(when)
        seeds = st.text_input("Seeds", ",".join(map(str, spec["seeds"])), key=f"seeds-{current}",
                              help="Every strategy runs once per seed; the verdict compares the gain with the "
                                   "spread between seeds. Up to 5.")
        if seeds != ",".join(map(str, spec["seeds"])):
            q["seeds"] = seeds.replace(" ", "")
            st.rerun()
        if st.button("Launch experiment", type="primary", disabled=bool(plan["why"]), key="launch"):
            open_launched(lambda: api.launch_experiment(spec, me))
    links = api.experiment_links(api.list_experiments(me))
    if links:
        st.subheader("Experiments you can open")
        for label, exp_id in links:
            st.page_link("pages/0_experiments.py", label=escape_markdown(label), query_params={"experiment": exp_id},
                         icon=":material/science:")


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
    labels = {d["name"]: d["label"] for d in api.domain_choices(me)}  # as the Data page names them
    doms = list(labels)
    methods = [m["name"] for m in api.method_cards() if m["name"] != "source_only"]
    c1, c2, c3 = st.columns([1, 1, 2])
    src = c1.selectbox("Source", doms, index=doms.index(q.get("source")) if q.get("source") in doms else 0,
                       format_func=lambda n: labels.get(n, n))
    tgt = c2.selectbox("Target", doms, index=doms.index(q.get("target")) if q.get("target") in doms else 0,
                       format_func=lambda n: labels.get(n, n))
    chosen = [m for m in (q.get("methods") or "").split(",") if m in methods]
    picked = c3.multiselect("Strategies (source only is always there)", methods, default=chosen,
                            max_selections=7)
    try:  # a link's budget as the experiment reads it (a malformed one is dropped: the field starts at 0)
        linked = api.link_budget(q.get("budget")) / 60
    except TLError:
        linked = 0.0
    minutes = st.number_input("Time per run (min; 0: each method's own schedule)", 0.0, 24 * 60.0, step=0.5,
                              value=linked,
                              help="Plan what each run leaves open to fit this time on this machine, as "
                                   "`train --budget` does (steps; for a pretrained backbone also the frozen "
                                   "stages, input size and batch).")
    new = {"source": src, "target": tgt, "methods": ",".join(picked)}
    if minutes:
        new["budget"] = f"{minutes * 60:g}"
    if any(q.get(k) != v for k, v in new.items()) or (not minutes and "budget" in q):
        q.update(new)
        if not minutes and "budget" in q:
            del q["budget"]
        st.rerun()
    advice_panel(me, src, tgt, open_launched)


exp = q.get("experiment")
if exp:
    try:
        show(me, exp, PRESETS)
    except StoreBusy:
        raise
    except Exception as e:  # noqa: BLE001 - an unknown or hidden id, or a store problem: say so, offer a way on
        error_box(e)
        if st.button("Set up a new experiment"):
            q.clear()
            st.rerun()
else:
    setup()
