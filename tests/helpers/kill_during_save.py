"""Crash a checkpoint save at random points, many times, and check what is left after each crash.

A child process (forked, so that torch is imported once) saves checkpoints in a loop; the parent
SIGKILLs it after a random delay, then checks every `ckpt-*` folder and both pointers. Prints one
JSON line with the counts. Used by tests/integration/test_faults.py and docs/RELIABILITY.md.

    python tests/helpers/kill_during_save.py RUN_DIR [KILLS]
"""
import json
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
torch.set_num_threads(1)  # fork-safe

from tl_core import RunConfig  # noqa: E402
from tl_core.models.checkpoint import Checkpointer, Predictor, _load_tensors  # noqa: E402
from tl_core.training.trainer import Trainer  # noqa: E402


def main() -> int:
    run_dir, kills = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 30
    cfg = RunConfig().replace(data={"source": "syndigits", "target": "uci_digits", "max_per_domain": 200},
                              method={"name": "dann", "params": {}},
                              train={"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "embedding": "none"})
    t = Trainer(cfg)
    t.setup()
    t.fit()  # a real trainer state (optimizer moments, history) to save
    torch.set_num_threads(1)  # set-up asked for every core; a forked child must not wait on the parent's pool
    rng = random.Random(0)
    counts = {"kills": 0, "folders_checked": 0, "loaded": 0, "broken": 0, "pointer_ok": 0, "pointer_bad": 0,
              "partial_tmp_left": 0, "saves_completed": 0}
    epoch = 0
    for _ in range(kills):
        pid = os.fork()
        if pid == 0:  # child: save forever, numbering on from the last epoch
            ck = Checkpointer(run_dir, keep=2)
            e = epoch
            while True:
                e += 1
                ck.save(t.state, t.model_meta(), e, best=e % 3 == 0)
        time.sleep(rng.uniform(0.02, 0.6))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        counts["kills"] += 1
        # unfinished copies and half-deleted folders, under names no reader treats as checkpoints
        counts["partial_tmp_left"] += len(list(run_dir.glob(".tmp-ckpt-*")) + list(run_dir.glob(".del-*")))
        ck = Checkpointer(run_dir, keep=2)  # (the next writer sweeps them away)
        for folder in sorted(run_dir.glob("ckpt-*")):
            counts["folders_checked"] += 1
            try:
                Predictor(folder)
                _load_tensors(folder / "state.safetensors")
                json.loads((folder / "state.json").read_text())
                counts["loaded"] += 1
            except Exception:  # noqa: BLE001 - a broken checkpoint is what this counts
                counts["broken"] += 1
        for which in ("last", "best"):
            if (run_dir / f"{which}.json").exists():
                ok = ck.path(which) is not None
                counts["pointer_ok" if ok else "pointer_bad"] += 1
        done = sorted(run_dir.glob("ckpt-*"))
        epoch = max([epoch] + [int(f.name[5:]) for f in done])
        counts["saves_completed"] = epoch
    shutil.rmtree(run_dir, ignore_errors=True)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
