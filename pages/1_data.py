"""Step 1: choose the source and the target domain."""
import numpy as np
import streamlit as st

from pages._ui import cfg, error_box, escape_markdown, keep_draft_in_url, next_button, page_setup, session, update
from tl_core.app import api

st.title("1 · Data: where the knowledge comes from, and where it goes")
page_setup()
keep_draft_in_url()  # a reload keeps this session's choices
st.markdown("The **source** has labels; the model learns from it. The **target** is where you want it to work; "
            "its labels are hidden from training (unless you allow a few on the Strategy page) and used only to "
            "measure how well the knowledge transferred.")
me = session()


def choices() -> dict:
    """Built-in domains, the teacher's datasets, this session's uploads and folders: name -> info."""
    out = {d["name"]: d for d in api.domain_choices(me)}
    out.update({n: {"name": n, "label": lab, "description": "", "available": True}
                for n, lab in api.session_folders(me).items() if n not in out})
    return out


with st.expander("Use your own images (a folder, or a zip of class folders)"):
    st.caption("Layout: one sub-folder per class, e.g. `flowers/rose/1.jpg`, `flowers/tulip/2.jpg`. "
               "Source and target need the same class folder names. Only image files are kept.")
    c1, c2 = st.columns(2)
    roots = api.folder_roots(me)
    path = c1.text_input("Folder on the server", placeholder=(roots[0] + "/my_images") if roots else "",
                         disabled=not roots, help="Allowed: " + (", ".join(roots) if roots else "none"))
    if not roots:
        c1.caption("Folders on this server are switched off (its owner can allow some with TL_FOLDER_ROOTS). "
                   "Upload a zip instead.")
    if c1.button("Add folder", disabled=not roots) and path:
        try:
            res = api.add_folder(path, me)
            st.success(escape_markdown(f"Added {res['label']}: classes {', '.join(res['classes'])}"))
            for w in res["warnings"]:
                st.warning(escape_markdown(w))
        except Exception as e:  # noqa: BLE001
            error_box(e)
    up = c2.file_uploader("Zip of class folders", type=["zip"])
    zname = c2.text_input("Name for it", value=(up.name.rsplit(".", 1)[0] if up else ""))
    if c2.button("Add zip", disabled=up is None):
        try:
            res = api.ingest_zip(up.getvalue(), zname, me)
            st.success(escape_markdown(f"Added {res['label']}: {len(res['classes'])} classes ({', '.join(res['classes'])})"
                             + (f"; ignored {len(res['skipped'])} files that are not images" if res["skipped"] else "")))
            for w in res["warnings"]:
                st.warning(escape_markdown(w))
        except Exception as e:  # noqa: BLE001
            error_box(e)
    mine = api.my_uploads(me)
    if mine:
        st.caption("Your uploads (deleting one frees its space; runs made with it keep their results):")
    for u in mine:
        u1, u2 = st.columns([4, 1])
        u1.caption(escape_markdown(f"{u['name']}: {u['bytes'] / 2**20:.1f} MB of files, {u['decoded_bytes'] / 2**20:.0f} MB "
                         f"decoded"))
        if u2.button("Delete", key=f"del-{u['name']}"):
            try:
                api.delete_upload(me, u["name"])
                st.rerun()
            except Exception as e:  # noqa: BLE001
                error_box(e)

known = choices()
names = list(known)
current = cfg()["data"]


def base_of(name: str) -> str:
    b = api.domain_base(name)
    return b if b in known else (name if name in known else names[0])


cols = st.columns(2)
chosen = {}
for col, role in zip(cols, ("source", "target")):
    with col:
        st.subheader("Source (labelled)" if role == "source" else "Target (to adapt to)")
        base = st.selectbox(f"{role.title()} domain", names, index=names.index(base_of(current[role])),
                            format_func=lambda n: known[n]["label"], key=f"{role}_base")
        info = known[base]
        if info["description"]:
            st.caption(escape_markdown(info["description"]))
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
                    before, after = api.shift_preview(base, kind, sev, me)
                    st.image([np.concatenate(list(before), 1), np.concatenate(list(after), 1)],
                             caption=["before", "after the shift"], width="stretch")
                except Exception as e:  # noqa: BLE001
                    error_box(e)
        chosen[role] = name
        if not info["available"]:
            st.warning(escape_markdown(info["unavailable_reason"]))
            continue
        try:
            p = api.preview_mosaic(name, me)
        except Exception as e:  # noqa: BLE001
            error_box(e)
            continue
        st.image(p["mosaic"], caption=escape_markdown(f"one row per class: {', '.join(p['classes'])}"), width="stretch")
        st.caption(f"{p['n_train']:,} train / {p['n_test']:,} test images, {p['size'][0]}×{p['size'][1]}, "
                   f"{'colour' if p['channels'] == 3 else 'grey'}")
        import pandas as pd  # here, after the title: on a fresh server it costs ~0.6 s before anything shows

        counts = pd.DataFrame({"train": p["train_counts"], "test": p["test_counts"]})
        st.bar_chart(counts, height=160, stack=True)

if chosen != {"source": current["source"], "target": current["target"]}:
    update("data", **chosen)

ok, msg = api.label_space(chosen["source"], chosen["target"], me)
if ok:
    st.success(escape_markdown(msg), icon=":material/check_circle:")
    next_button("pages/2_model.py", "Next: choose the model →")
else:
    st.error(escape_markdown(msg + " Until then the other steps cannot start a run."), icon=":material/error:")
