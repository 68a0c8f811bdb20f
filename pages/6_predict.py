"""Step 6: try a trained model on new images."""
import streamlit as st

from pages._ui import error_box
from tl_core import app_api as api
from tl_core import list_runs

st.title("6 · Predict: try the model on new images")
done = list_runs(status="finished", limit=200)
if not done:
    st.info("No finished run yet. Train one on the Train page first.")
    st.stop()
run_id = st.selectbox("Model (a finished run; its best checkpoint by source validation accuracy)",
                      [r["id"] for r in done], format_func={r["id"]: api.run_label(r) for r in done}.get)
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
if draw:
    st.session_state.samples = api.target_samples(run_id, 8, seed=len(st.session_state.get("samples", ([], []))[0]))
if not files and "samples" in st.session_state:
    images, truth = st.session_state.samples
    captions = [f"true class: {t}" for t in truth]

if images:
    try:
        results = api.predict(run_id, images, top_k=k)
    except Exception as e:  # noqa: BLE001
        error_box(e)
        st.stop()
    for row in range(0, len(images), 4):
        cols = st.columns(4)
        for col, img, cap, res in zip(cols, images[row:row + 4], captions[row:row + 4], results[row:row + 4]):
            with col.container(border=True):
                st.image(res["seen"], caption=f"{cap} — as the model sees it", width=140)
                for cls, p in zip(res["classes"], res["probs"]):
                    st.progress(p, text=f"{cls}: {p:.1%}")
else:
    st.caption("Upload images, or draw samples from the target's test split.")
