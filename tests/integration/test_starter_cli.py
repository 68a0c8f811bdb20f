"""The offline starter pack as the command line lists it when the full datasets are absent."""
import os
import subprocess
import sys

from conftest import ROOT


def test_cli_lists_the_pack_offline(tmp_path):
    (tmp_path / "nodata").mkdir()
    env = {**os.environ, "TL_DATA_DIR": str(tmp_path / "nodata"), "TL_OFFLINE": "1", "TL_HOME": str(tmp_path / "h")}
    out = subprocess.run([sys.executable, "-m", "tl_core", "list"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120).stdout
    assert "MNIST (starter pack)" in out and "USPS (starter pack)" in out
