"""Step 1: choose the source and the target domain."""
import numpy as np
import streamlit as st

from pages._ui import cfg, error_box, next_button, plain, update
from tl_core import app_api as api

st.title("1 · Data: where the knowledge comes from, and where it goes")
st.markdown("The **source** has labels; the model learns from it. The **target** is where you want it to work; "
            "its labels are hidden from training (unless you allow a few on the Strategy page) and used only to "
            "measure how well the knowledge transferred.")

builtin = {d["name"]: d for d in api.domain_choices()}
extra = st.session_state.extra_domains
names = list(builtin) + [n for n in extra if n not in builtin]
label = lambda n: builtin[n]["label"] if n in builtin else extra.get(n, n)  # noqa: E731
current = cfg()["data"]


def base_of(name: str) -> str:
    return name.split("+")[0] if name.split("+")[0] in names else names[0]


with st.expander("Use your own images (a folder, or a zip of class folders)"):
    st.caption("Layout: one sub-folder per class, e.g. `flowers/rose/1.jpg`, `flowers/tulip/2.jpg`. "
               "Source and target need the same class folder names.")
    c1, c2 = st.columns(2)
    path = c1.text_input("Folder on the server", placeholder="/data/my_images/photos")
    if c1.button("Add folder") and path:
        try:
            res = api.add_folder(path)
            extra[res["domain"]] = f"{res['label']} (folder)"
            st.success(plain(f"Added {res['label']}: classes {', '.join(res['classes'])}"))
            for w in res["warnings"]:
                st.warning(plain(w))
        except Exception as e:  # noqa: BLE001
            error_box(e)
    up = c2.file_uploader("Zip of class folders", type=["zip"])
    zname = c2.text_input("Name for it", value=(up.name.rsplit(".", 1)[0] if up else ""))
    if c2.button("Add zip", disabled=up is None):
        try:
            res = api.ingest_zip(up.getvalue(), zname, st.session_state.session_id)
            extra[res["domain"]] = f"{zname} (upload)"
            st.success(plain(f"Added {zname}: {len(res['classes'])} classes ({', '.join(res['classes'])})"
                             + (f"; ignored {len(res['skipped'])} system files" if res["skipped"] else "")))
            for w in res["warnings"]:
                st.warning(plain(w))
        except Exception as e:  # noqa: BLE001
            error_box(e)
    names = list(builtin) + [n for n in extra if n not in builtin]

cols = st.columns(2)
chosen = {}
for col, role in zip(cols, ("source", "target")):
    with col:
        st.subheader("Source (labelled)" if role == "source" else "Target (to adapt to)")
        base = st.selectbox(f"{role.title()} domain", names, index=names.index(base_of(current[role])),
                            format_func=label, key=f"{role}_base")
        info = builtin.get(base)
        if info:
            st.caption(info["description"])
        name = base
        if role == "target":
            shift_on = st.toggle("Apply a shift to the target", value="+" in current["target"], key="shift_on",
                                 help="Make the target harder on purpose: rotate, blur, add noise ...")
            if shift_on:
                kinds = api.shift_kinds()
                k1, k2 = st.columns(2)
                kind = k1.selectbox("Shift", list(kinds), key="shift_kind", help="; ".join(f"{k}: {v}" for k, v in kinds.items()))
                sev = k2.slider("Severity", 1, 5, 3, key="shift_sev")
                name = f"{base}+{kind}:{sev}"
                try:
                    before, after = api.shift_preview(base, kind, sev)
                    st.image([np.concatenate(list(before), 1), np.concatenate(list(after), 1)],
                             caption=["before", "after the shift"], width="stretch")
                except Exception as e:  # noqa: BLE001
                    error_box(e)
        chosen[role] = name
        if info and not info["available"]:
            st.warning(info["unavailable_reason"])
            continue
        try:
            p = api.preview_mosaic(name)
        except Exception as e:  # noqa: BLE001
            error_box(e)
            continue
        st.image(p["mosaic"], caption=plain(f"one row per class: {', '.join(p['classes'])}"), width="stretch")
        st.caption(f"{p['n_train']:,} train / {p['n_test']:,} test images, {p['size'][0]}×{p['size'][1]}, "
                   f"{'colour' if p['channels'] == 3 else 'grey'}")
        import pandas as pd  # here, after the title: on a fresh server it costs ~0.6 s before anything shows

        counts = pd.DataFrame({"train": p["train_counts"], "test": p["test_counts"]})
        st.bar_chart(counts, height=160, stack=True)

if chosen != {"source": current["source"], "target": current["target"]}:
    update("data", **chosen)

ok, msg = api.label_space(chosen["source"], chosen["target"])
if ok:
    st.success(plain(msg), icon=":material/check_circle:")
    next_button("pages/2_model.py", "Next: choose the model →")
else:
    st.error(plain(msg + " Until then the other steps cannot start a run."), icon=":material/error:")
