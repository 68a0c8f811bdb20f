"""`reproduce` refuses malformed files in words, never with a traceback."""
import json

from conftest import ROOT


def test_reproduce_refuses_malformed_files_in_words(tmp_path):
    import subprocess
    import sys

    cases = {"bad_section.json": json.dumps({"target_acc": 0.9, "config": {"data": "x"}}),
             "nested.json": "[" * 3000 + "]" * 3000,
             "nan.json": '{"target_acc": NaN, "config": {}}',
             "ci.json": json.dumps({"target_acc": 0.9, "target_acc_ci": "x", "config": {}})}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        p = subprocess.run([sys.executable, "-m", "tl_core", "reproduce", str(tmp_path / name)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr, (name, p.stderr)
