"""Step 6: try a trained model on new images."""
import streamlit as st

from pages._ui import error_box, escape_markdown, page_setup, session
from tl_core.app import api

st.title("6 · Predict: try the model on new images")
page_setup()
ss, me = st.session_state, session()
ss.setdefault("models", {})  # models uploaded in this session: reference -> label
with st.expander("Use a model file (a checkpoint downloaded from the Compare page)"):
    st.caption("Upload the checkpoint zip, or `model.safetensors` with the `model.json` beside it. Only "
               "safetensors is accepted: PyTorch pickles (.pt, .pth, .ckpt) can run code when opened, so they are "
               "refused unread.")
    m1, m2 = st.columns(2)
    wfile = m1.file_uploader("Checkpoint zip, or model.safetensors", type=["zip", "safetensors"], key="weights_file")
    jfile = m2.file_uploader("model.json (not needed with the zip)", type=["json"], key="meta_file")
    is_zip = wfile is not None and wfile.name.lower().endswith(".zip")
    if st.button("Add model", disabled=not (wfile and (jfile or is_zip))):
        try:
            weights, meta = api.unpack_model_zip(wfile.getvalue()) if is_zip else (wfile.getvalue(), jfile.getvalue())
            res = api.import_model(weights, meta, wfile.name.rsplit(".", 1)[0], me)
            ss.models[res["model"]] = res["label"]
            st.success(escape_markdown(f"Added {res['label']}: classes {', '.join(res['classes'])}"))
        except Exception as e:  # noqa: BLE001
            error_box(e)
mine = api.my_models(me)  # this session's model files, also after a reload
if mine:
    with st.expander(f"Your model files ({len(mine)})"):
        for ref, label in mine.items():
            c1, c2 = st.columns([4, 1])
            c1.markdown(escape_markdown(label))
            if c2.button("Delete", key=f"del-{ref}", icon=":material/delete:"):
                try:
                    api.delete_my_model(me, ref)
                    ss.models.pop(ref, None)
                    st.rerun()
                except Exception as e:  # noqa: BLE001
                    error_box(e)
labels = {**api.finished_runs(me), **mine}
if not labels:
    st.info("No finished run yet. Train one on the Train page first, or add a model file above.")
    st.stop()
run_id = st.selectbox("Model (a finished run's reported checkpoint, chosen without target labels; or a model "
                      "file you added)", list(labels), format_func=labels.get)
if ss.get("samples_for") != run_id:  # samples drawn for another model are not this one's target
    ss.pop("samples", None)
    ss.samples_for = run_id
k = st.slider("Show the top", 1, 5, 3)

c1, c2 = st.columns(2)
files = c1.file_uploader("Upload images", type=["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"],
                         accept_multiple_files=True)
draw = c2.button("Draw 8 images from the target test split")

images, captions = [], []
for f in files or []:
    try:
        images.append(api.decode_upload(f.getvalue(), f.name))
        captions.append(f.name)
    except Exception as e:  # noqa: BLE001
        error_box(e)
if draw and run_id.startswith("upload:"):
    st.warning("A model file has no target domain to draw from: upload images instead.")
elif draw:
    try:
        ss.samples = api.target_samples(me, run_id, 8, seed=len(ss.get("samples", ([], []))[0]))
    except Exception as e:  # noqa: BLE001
        error_box(e)
if not files and "samples" in ss:
    images, truth = ss.samples
    captions = [f"true class: {t}" for t in truth]

if images:
    try:
        results = api.predict(me, run_id, images, top_k=k)
    except Exception as e:  # noqa: BLE001
        error_box(e)
        st.stop()
    for row in range(0, len(images), 4):
        cols = st.columns(4)
        for col, img, cap, res in zip(cols, images[row:row + 4], captions[row:row + 4], results[row:row + 4]):
            with col.container(border=True):
                st.image(res["seen"], caption=escape_markdown(f"{cap} — as the model sees it"), width=140)
                for cls, p in zip(res["classes"], res["probs"]):
                    st.progress(p, text=escape_markdown(f"{cls}: {p:.1%}"))
else:
    st.caption("Upload images, or draw samples from the target's test split.")
