"""Step 5: compare strategies side by side; export, download, share or delete runs."""
import json

import pandas as pd
import streamlit as st

from pages._ui import error_box, escape_markdown, page_setup, session
from tl_core.app import api
from tl_core.app import plots

st.title("5 · Compare: which strategy transferred best?")
page_setup()
me = session()
all_runs = api.list_runs(me, limit=500)
rows = api.compare_rows(all_runs)
if not rows:
    st.info("No runs yet. Launch one on the Train page; runs the teacher starts from the command line, and runs "
            "classmates share, appear here too.")
    st.stop()
df = pd.DataFrame(rows)
df["gain"] = pd.to_numeric(df["gain"])  # None (no source-only baseline yet) -> NaN, shown as "—"

f1, f2, f3, f4 = st.columns(4)
status = f1.multiselect("Status", sorted(df.status.unique()), default=[])
methods = f2.multiselect("Method", sorted(df.method.unique()), default=[])
pairs = sorted({f"{s} → {t}" for s, t in zip(df.source, df.target)})
pair = f3.multiselect("Source → target", pairs, default=[])
whose = f4.multiselect("Whose", sorted(df.shared.unique()), default=[])
keep = pd.Series(True, index=df.index)
for col, chosen_values in ((df.status, status), (df.method, methods), (df.source + " → " + df.target, pair),
                           (df.shared, whose)):
    if chosen_values:
        keep &= col.isin(chosen_values)
view = df[keep]

st.caption("Gain = target accuracy minus that of the newest finished source-only run with the same source, target "
           "and backbone. Red: negative transfer, only when the gain's whole 95% interval (from both runs' "
           "evaluation sets) is below zero; otherwise a difference may be the test images' luck.")
neg = set(view.index[view.verdict.str.startswith("negative transfer")])
styled = view.style.format({"source_acc": "{:.1%}", "target_acc": "{:.1%}", "gain": "{:+.1%}", "wall_s": "{:.0f}",
                            "trainable_params": "{:,.0f}"}, na_rep="—").apply(
    lambda col: ["color: #d62728; font-weight: bold" if i in neg else "" for i in col.index], subset=["gain"])
picked = st.dataframe(styled, hide_index=True, on_select="rerun", selection_mode="multi-row", key="table",
                      column_order=["run", "status", "method", "source", "target", "backbone", "freeze", "labels", "seed",
                                    "epochs", "source_acc", "target_acc", "gain", "verdict", "best_epoch", "wall_s",
                                    "trainable_params", "shared", "device", "executor", "node", "created"])
sel = [view.iloc[i]["id"] for i in picked.selection.rows] if picked and picked.selection.rows else []

for r in view.itertuples():
    if str(r.verdict).startswith("negative transfer"):
        st.error(escape_markdown(f"Negative transfer: run {r.run} ({r.method}, {r.source} → {r.target}) reaches "
                       f"{r.target_acc:.1%}, {-r.gain:.1%} below source only, more than both runs' test-set error. "
                       f"Try a smaller trade-off, fewer trainable stages, or another method."))

groups = api.seed_groups(all_runs)
if groups:
    st.subheader("Repeated seeds: mean ± standard deviation")
    st.caption("Runs whose settings differ only in the seed. One seed can be lucky; compare methods by these.")
    st.dataframe(pd.DataFrame([{
        "method": g["method"], "source → target": f"{g['source']} → {g['target']}", "backbone": g["backbone"],
        "seeds": ", ".join(map(str, g["seeds"])),
        "target accuracy": f"{100 * g['target_acc_mean']:.1f} ± {100 * g['target_acc_std']:.1f} %",
        "source accuracy": f"{100 * g['source_acc_mean']:.1f} ± {100 * g['source_acc_std']:.1f} %"}
        for g in groups]), hide_index=True)

chosen = sel or list(view[view.status == "finished"]["id"][:6])
if chosen:
    st.caption("Select rows in the table to choose what is plotted" + ("" if sel else " (showing the newest finished runs)."))
    legend = dict(zip(df.id, df.run))  # one label per run (compare_rows numbers twins)
    curves = {legend[i]: api.read_metrics(me, i)[0] for i in chosen}
    a, b = st.columns(2)
    a.plotly_chart(plots.overlay_accuracy(curves))
    sub = df.set_index("id").loc[chosen]
    ok = sub["target_acc"].notna()
    b.plotly_chart(plots.accuracy_bars([legend[i] for i in sub.index[ok]],
                                       list(sub.target_acc[ok]), [None if g != g else g for g in sub.gain[ok]]))

st.subheader("Export, download, share, delete")
ids = list(view["id"])
run_names = dict(zip(view["id"], view["choice"]))
run_id = st.selectbox("Run", ids, index=0 if not sel else ids.index(sel[0]), format_func=run_names.get) if ids else None
if run_id:
    r = api.get_run(me, run_id)
    c1, c2 = st.columns(2)
    c1.markdown("Config (JSON)")
    c1.code(json.dumps(r["config"], indent=2), language="json")
    c1.download_button("Download config", json.dumps(r["config"], indent=2), f"transferlab-{run_id}.json",
                       mime="application/json")
    c2.markdown("The same run from the command line")
    c2.code(api.cli_command(r["config"]), language="bash")
    ck = api.checkpoint_bytes(me, run_id)
    if ck:
        c2.download_button("Download checkpoint (safetensors + JSON)", ck[0], ck[1], mime="application/zip")
    else:
        c2.caption("No checkpoint yet (one is saved at the end of each epoch).")
    if not r["mine"]:
        c2.caption("Shared with you: read-only (only its owner can stop, share or delete it).")
    else:
        shared = c2.toggle("Share with the class (read-only for everyone else)", value=bool(r["published"]),
                           key=f"share-{run_id}")
        if shared != bool(r["published"]):
            api.publish_run(me, run_id, shared)
            st.rerun()
        sure = c2.checkbox(escape_markdown(f"Yes, delete the run {run_names[run_id]} and its files"),
                           key=f"sure-{run_id}")
        if c2.button("Delete run", disabled=not sure):
            try:
                api.delete_run(me, run_id)
                st.rerun()
            except Exception as e:  # noqa: BLE001
                error_box(e)
