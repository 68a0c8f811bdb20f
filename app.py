"""TransferLab: the guided app. `streamlit run app.py`"""
import streamlit as st

from pages._ui import init_state, sidebar, via_app

st.set_page_config(page_title="TransferLab", page_icon=":material/transform:", layout="wide")
init_state()

pages = [
    st.Page("pages/0_experiments.py", url_path="experiments", title="Experiments", icon=":material/science:",
            default=True),
    st.Page("pages/1_data.py", url_path="data", title="1 · Data", icon=":material/dataset:"),
    st.Page("pages/2_model.py", url_path="model", title="2 · Model", icon=":material/layers:"),
    st.Page("pages/3_strategy.py", url_path="strategy", title="3 · Strategy", icon=":material/tune:"),
    st.Page("pages/4_train.py", url_path="train", title="4 · Train", icon=":material/monitoring:"),
    st.Page("pages/5_compare.py", url_path="compare", title="5 · Compare", icon=":material/compare:"),
    st.Page("pages/6_predict.py", url_path="predict", title="6 · Predict", icon=":material/image_search:"),
]
page = st.navigation(pages)
sidebar()
with via_app():
    page.run()
