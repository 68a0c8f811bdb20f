"""Step 2: choose the backbone, its weights and how deep to freeze it."""
import streamlit as st

from pages._ui import cfg, error_box, keep_draft_in_url, next_button, page_setup, session, update
from tl_core.app import api
from tl_core.app import plots

st.title("2 · Model: the feature extractor")
page_setup()
keep_draft_in_url()  # a reload keeps this session's choices
st.markdown("The **backbone** turns an image into a feature vector; a new linear **head** turns features into "
            "classes. **Freezing** the first stages keeps what they already know and makes training faster; "
            "the later stages are the most specific to the data they were trained on.")

choices = {b["name"]: b for b in api.backbone_choices()}
m = cfg()["model"]
names = list(choices)
name = st.selectbox("Backbone", names, index=names.index(m["backbone"]), format_func=lambda n: choices[n]["label"],
                    key="backbone")
b = choices[name]
st.caption(b["description"])

pretrained = False
if b["has_pretrained"]:
    want = st.toggle("Start from ImageNet-pretrained weights", value=m["pretrained"] is not False, key="pretrained")
    if want and not b["weights_available"]:
        st.warning(b["weights_note"] + " Until then this run would fail at start; switch this off to train from "
                   "random weights (an explicit choice: we never swap silently).", icon=":material/cloud_off:")
    elif want:
        st.success(b["weights_note"], icon=":material/check_circle:")
    pretrained = want
else:
    st.info("This backbone always starts from random weights (it is small enough to train from scratch).")

size = None
if name != "lenet":
    sizes = [s for s in (32, 64, 96, 128, 160, 192, 224) if s >= b["min_size"]]
    size = st.select_slider("Input size (pixels)", sizes, value=m["input_size"] or b["default_size"],
                            help="Smaller inputs train much faster on a CPU (cost grows with the square of the "
                                 "size) but pretrained features fit 224 px best.", key=f"size-{name}")
    st.caption(f"Relative cost per image vs 224 px: {(size / 224) ** 2:.0%}")

stages = b["stages"]
depth = st.select_slider("Freeze depth: stages that stay frozen", options=list(range(len(stages) + 1)),
                         value=min(m["freeze"] if m["backbone"] == name else 0, len(stages)),
                         format_func=lambda d: "none (train all)" if d == 0 else f"{d}: up to {stages[d - 1]}",
                         key=f"freeze-{name}")
widths = (0, 128, 256, 512)
now = m.get("bottleneck", 0)
h1, h2 = st.columns(2)
bottleneck = h1.selectbox("Bottleneck: a trainable layer after the backbone", widths,
                          index=widths.index(now) if now in widths else 0,
                          format_func=lambda k: "none" if k == 0 else f"{k} features",
                          help="A Linear-BatchNorm-ReLU layer between the pooled features and the head. With "
                               "every stage frozen it is what alignment methods can still move; the planner "
                               "adds 256 for a pretrained backbone, and for SHOT (its recipe).",
                          key=f"bottleneck-{name}")
heads = ("linear", "weight_norm")
head = h2.selectbox("Classifier head", heads, index=heads.index(m.get("head", "linear")),
                    format_func=lambda k: {"linear": "linear", "weight_norm": "weight-normalised linear"}[k],
                    help="Weight-normalised: each class's weight vector is a learned length times a direction. "
                         "SHOT's source model uses it (with a 256 bottleneck): on MNIST → USPS it lifts SHOT from "
                         "93 % to 96 %.", key=f"head-{name}")
if depth == len(stages):
    st.info("The whole backbone is frozen: only the new head trains (feature extraction)." if not bottleneck else
            "The whole backbone is frozen: its features are computed once per image, and only the bottleneck "
            "and the head train.")

channels = api.input_channels(cfg()["data"]["source"], cfg()["data"]["target"], session())


@st.cache_data(show_spinner="Counting parameters ...")
def summary(name, depth, size, channels, bottleneck):
    return api.model_summary(name, depth, size, channels, bottleneck)


try:
    s = summary(name, depth, size, channels, bottleneck)
    c1, c2, c3 = st.columns(3)
    c1.metric("Trainable parameters", f"{s['trainable']:,}")
    c2.metric("Total parameters", f"{s['total']:,}")
    c3.metric("Input", f"{s['input']['size']}×{s['input']['size']}×{s['input']['channels']}")
    st.plotly_chart(plots.stage_diagram(s["stages"], depth), config={"displayModeBar": False})
except Exception as e:  # noqa: BLE001
    error_box(e)

new = {"backbone": name, "freeze": depth, "pretrained": None if pretrained else False, "input_size": size,
       "bottleneck": bottleneck, "head": head}
if name == "lenet":
    new["pretrained"] = None
if any(m.get(k) != v for k, v in new.items()):
    update("model", **new)
next_button("pages/3_strategy.py", "Next: choose the strategy →")
