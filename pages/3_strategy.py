"""Step 3: choose the adaptation method, its hyperparameters and the target label regime."""
import streamlit as st

from pages._ui import cfg, escape_markdown, keep_draft_in_url, next_button, page_setup, session, update
from tl_core.app import api

st.title("3 · Strategy: how to carry the knowledge over")
page_setup()
keep_draft_in_url()  # a reload keeps this session's choices
cards = {c["name"]: c for c in api.method_cards()}
me = cfg()["method"]
names = list(cards)
family = lambda n: f"{cards[n]['label']}  ·  {cards[n]['family']}"  # noqa: E731
name = st.radio("Adaptation method", names, index=names.index(me["name"]) if me["name"] in names else 0,
                format_func=family, horizontal=False, key="method_choice")
c = cards[name]
with st.container(border=True):
    st.markdown(f"#### {c['label']}")
    st.markdown(c["summary"])
    st.markdown(f"**Formula:** `{c['formula']}`")
    h1, h2 = st.columns(2)
    h1.markdown(f"**Helps when:** {c['helps']}")
    h2.markdown(f"**Can hurt when:** {c['hurts']}")
    st.caption(f"Paper: {c['paper']}")
    if c["needs_target_labels"]:
        st.info("This method needs some labelled target images: choose how many below.")

params = dict(me["params"]) if me["name"] == name else {}
if c["params"]:
    st.markdown("##### Hyperparameters")
    cols = st.columns(min(3, len(c["params"])))
    for i, (pname, p) in enumerate(c["params"].items()):
        col, cur = cols[i % len(cols)], params.get(pname, p["default"])
        key = f"p-{name}-{pname}"
        if p["run_ref"]:  # the id of a finished run: offer them by name
            runs = api.finished_runs(session())
            opts = [""] + list(runs) + ([cur] if cur and cur not in runs else [])
            params[pname] = col.selectbox(pname, opts, index=opts.index(cur) if cur in opts else 0, help=p["help"],
                                          key=key, format_func=lambda r: runs.get(r, "a run you cannot see") if r else "none")
            if not runs:
                col.caption("No finished run yet: train one first, then pick it here.")
        elif p["choices"]:
            params[pname] = col.selectbox(pname, p["choices"], index=p["choices"].index(cur), help=p["help"], key=key)
        elif p["type"] == "str":
            params[pname] = col.text_input(pname, value=str(cur), help=p["help"], key=key)
        elif p["type"] == "bool":
            params[pname] = col.checkbox(pname, value=bool(cur), help=p["help"], key=key)
        elif p["type"] == "int":
            params[pname] = int(col.number_input(pname, int(p["low"]), int(p["high"]), int(cur), help=p["help"], key=key))
        else:
            params[pname] = float(col.number_input(pname, float(p["low"]), float(p["high"]), float(cur),
                                                   help=p["help"], key=key, format="%g"))

st.markdown("##### Target labels")
d = cfg()["data"]
regimes = {"none": "None (unsupervised adaptation)", "k": "A few per class", "all": "All (supervised upper bound)"}
cur_regime = d["target_labels"] if d["target_labels"] in ("none", "all") else "k"
regime = st.radio("Labelled target images", list(regimes), index=list(regimes).index(cur_regime),
                  format_func=regimes.get, horizontal=True, key="regime")
labels = regime
if regime == "k":
    labels = int(st.number_input("Labelled target images per class", 1, 1000,
                                 int(d["target_labels"]) if cur_regime == "k" else 5, key="labels_k"))

t = cfg()["train"]
with st.expander("Training settings"):
    a, b, c3 = st.columns(3)
    # keyed widgets: an unkeyed widget whose default follows the config gets a new identity when the
    # config changes, and the next edit to it would be lost
    epochs = a.number_input("Epochs", 1, 200, t["epochs"], key="epochs")
    steps = b.number_input("Steps per epoch", 10, 10000, t["steps_per_epoch"], key="steps")
    batch = c3.number_input("Batch size (per domain)", 2, 1024, t["batch_size"], key="batch")
    lr = a.number_input("Learning rate", 1e-6, 1.0, t["lr"], format="%g", key="lr")
    seed = b.number_input("Seed", 0, 10_000, t["seed"], key="seed")
    embedding = c3.selectbox("Feature map", ["tsne", "pca", "none"], index=["tsne", "pca", "none"].index(t["embedding"]),
                             key="embedding")
    sels = api.selection_choices()
    selection = a.selectbox("Reported epoch", list(sels), index=list(sels).index(t.get("selection", "last")),
                            format_func=lambda k: f"{k}: {sels[k]}",
                            help="Which epoch's model the run keeps and reports. None of these reads a target label: "
                                 "picking the epoch with the best target accuracy would overstate the result.",
                            key="selection")
    n_seeds = b.number_input("Repeat with seeds", 1, 10, max(1, len(t.get("seeds") or ())),
                             help="More than 1: one run per seed (seed, seed+1, ...), reported as mean ± std "
                                  "on the Compare page.", key="n_seeds")

if (int(epochs), int(steps), int(batch)) != (t["epochs"], t["steps_per_epoch"], t["batch_size"]):
    st.session_state.schedule_chosen = True  # the Train page no longer fits the plan to its budget by itself
update("method", name=name, params=params)
update("data", target_labels=labels)
update("train", epochs=int(epochs), steps_per_epoch=int(steps), batch_size=int(batch), lr=float(lr), seed=int(seed),
       embedding=embedding, selection=selection,
       seeds=list(range(int(seed), int(seed) + int(n_seeds))) if n_seeds > 1 else [])

st.markdown("##### What this will do")
valid, why = api.validate(cfg(), session())
if valid is None:
    st.error(escape_markdown(why), icon=":material/error:")
else:
    st.markdown(api.describe_plan(valid))
    st.caption(f"Estimated time on this machine: about {api.estimate_seconds(valid) / 60:.1f} min.")
    next_button("pages/4_train.py", "Next: launch and watch →")
