"""One browser session of the app (Streamlit's AppTest), for the concurrency test: upload a zip in
this session, launch a tiny run from the Train page, and report what this session can see.

    python tests/helpers/session.py NAME   (prints one JSON line)
"""
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from streamlit.testing.v1 import AppTest  # noqa: E402

from tl_core import app_api as api  # noqa: E402


def zipped(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for c in ("a", "b"):
            for i in range(5):
                img = io.BytesIO()
                Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(img, "PNG")
                z.writestr(f"{name}/{c}/{i}.png", img.getvalue())
    return buf.getvalue()


def main() -> int:
    name = sys.argv[1]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    sid = at.session_state.session_id
    res = api.ingest_zip(zipped(name), name, sid)  # what the Data page's "Add zip" does
    at.session_state.extra_domains = {**at.session_state.extra_domains, res["domain"]: f"{name} (upload)"}
    tiny = {"epochs": 1, "steps_per_epoch": 5, "batch_size": 8, "embedding": "none"}
    at.session_state.cfg = {**at.session_state.cfg, "train": {**at.session_state.cfg["train"], **tiny},
                            "data": {**at.session_state.cfg["data"], "max_per_domain": 200}}
    at.switch_page("pages/4_train.py").run()
    next(b for b in at.button if b.label == "Launch").click().run()
    at.switch_page("pages/1_data.py").run()
    options = list(at.selectbox[0].options)
    print(json.dumps({"name": name, "session": sid, "run_id": at.session_state.run_id, "upload": res["path"],
                      "domain_options": options, "errors": [str(e.value) for e in at.exception]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
