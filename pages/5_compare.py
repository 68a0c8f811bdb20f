"""Step 5: compare strategies side by side; export, download or delete runs."""
import json

import pandas as pd
import streamlit as st

from pages._ui import error_box
from tl_core import app_api as api
from tl_core import delete, get_run, list_runs, read_metrics
from tl_core import plots

st.title("5 · Compare: which strategy transferred best?")
all_runs = list_runs(limit=500)
rows = api.compare_rows(all_runs)
if not rows:
    st.info("No runs yet. Launch one on the Train page; runs started from the command line appear here too.")
    st.stop()
df = pd.DataFrame(rows)
df["gain"] = pd.to_numeric(df["gain"])  # None (no source-only baseline yet) -> NaN, shown as "—"

f1, f2, f3 = st.columns(3)
status = f1.multiselect("Status", sorted(df.status.unique()), default=[])
methods = f2.multiselect("Method", sorted(df.method.unique()), default=[])
pairs = sorted({f"{s} → {t}" for s, t in zip(df.source, df.target)})
pair = f3.multiselect("Source → target", pairs, default=[])
keep = pd.Series(True, index=df.index)
for col, chosen_values in ((df.status, status), (df.method, methods), (df.source + " → " + df.target, pair)):
    if chosen_values:
        keep &= col.isin(chosen_values)
view = df[keep]

st.caption("Gain = target accuracy minus that of the newest finished source-only run with the same source, target "
           "and backbone. Red: negative transfer (the adaptation made the target worse).")
styled = view.style.format({"source_acc": "{:.1%}", "target_acc": "{:.1%}", "gain": "{:+.1%}", "wall_s": "{:.0f}",
                            "trainable_params": "{:,.0f}"}, na_rep="—").map(
    lambda g: "color: #d62728; font-weight: bold" if isinstance(g, float) and g < -0.005 else "", subset=["gain"])
picked = st.dataframe(styled, hide_index=True, on_select="rerun", selection_mode="multi-row", key="table",
                      column_order=["id", "status", "method", "source", "target", "backbone", "freeze", "labels", "seed",
                                    "epochs", "source_acc", "target_acc", "gain", "verdict", "best_epoch", "wall_s",
                                    "trainable_params", "device", "created"])
sel = [view.iloc[i]["id"] for i in picked.selection.rows] if picked and picked.selection.rows else []

for r in view.itertuples():
    if r.gain is not None and r.gain == r.gain and r.gain < -0.005:
        st.error(f"Negative transfer: run {r.id} ({r.method}, {r.source} → {r.target}) reaches {r.target_acc:.1%}, "
                 f"{-r.gain:.1%} below source only. Try a smaller trade-off, fewer trainable stages, or another method.")

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
    curves = {f"{i} {df.set_index('id').loc[i, 'method']}": read_metrics(i)[0] for i in chosen}
    a, b = st.columns(2)
    a.plotly_chart(plots.overlay_accuracy(curves))
    sub = df.set_index("id").loc[chosen]
    ok = sub["target_acc"].notna()
    b.plotly_chart(plots.accuracy_bars([f"{i} {m}" for i, m in zip(sub.index[ok], sub.method[ok])],
                                       list(sub.target_acc[ok]), [None if g != g else g for g in sub.gain[ok]]))

st.subheader("Export, download, delete")
run_id = st.selectbox("Run", list(view["id"]), index=0 if sel == [] else list(view["id"]).index(sel[0]))
if run_id:
    r = get_run(run_id)
    c1, c2 = st.columns(2)
    c1.markdown("Config (JSON)")
    c1.code(json.dumps(r["config"], indent=2), language="json")
    c1.download_button("Download config", json.dumps(r["config"], indent=2), f"transferlab-{run_id}.json",
                       mime="application/json")
    c2.markdown("The same run from the command line")
    c2.code(api.cli_command(r["config"]), language="bash")
    ck = api.checkpoint_bytes(run_id)
    if ck:
        c2.download_button("Download checkpoint (safetensors + JSON)", ck[0], ck[1], mime="application/zip")
    else:
        c2.caption("No checkpoint yet (one is saved at the end of each epoch).")
    sure = c2.checkbox(f"Yes, delete run {run_id} and its files", key=f"sure-{run_id}")
    if c2.button("Delete run", disabled=not sure):
        try:
            delete(run_id)
            st.rerun()
        except Exception as e:  # noqa: BLE001
            error_box(e)
