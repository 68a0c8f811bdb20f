"""Why the planner's recipe for a pretrained backbone on a small folder is what it is: PACS photo -> sketch
with EfficientNet-Lite0, the planned defaults against the same command with one choice changed.

Each variant runs `python -m tl_core train ... --method M --seed S --json` with the variant's flags on
top of the planned defaults (so everything else stays as planned), for source only and DANN (only DANN
where the variant changes nothing else), over the seeds given.

    python bench/pacs_recipe.py [--seeds 0,1,2,3] [--variants defaults,small_disc,long]

Every run appends a row to bench/results/folder_recipe.jsonl (`_table`, with its provenance); a cell measured
again (same variant, method and seed) is read from its latest row.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _table  # noqa: E402
from presets import PACS, SHARED, tl  # noqa: E402

KEY = ("variant", "method", "seed")
# name -> (what changes, extra flags, methods)
VARIANTS = {
    "defaults": ("the planned defaults", [], ("source_only", "dann")),
    "small_disc": ("DANN's digit discriminator (500 units, no BatchNorm)",
                   ["--param", "hidden=500", "--param", "batch_norm=false"], ("dann",)),
    "long": ("2,000 steps (4 x 500) instead of ~100 passes over the source", ["--steps", "500"],
             ("source_only", "dann")),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--variants", default="small_disc,long", help="the defaults are the folder runs of "
                    "bench/presets.py --folder-runs; add \"defaults\" to run them here too")
    a = ap.parse_args()
    if not PACS.exists():
        print(f"needs {PACS}", file=sys.stderr)
        return 1
    env = {**os.environ, "TL_HOME": tempfile.mkdtemp(prefix="tl-recipe-"), "TL_DATA_DIR": str(SHARED)}
    for name in a.variants.split(","):
        what, flags, methods = VARIANTS[name]
        for seed in [int(s) for s in a.seeds.split(",")]:
            for m in methods:
                args = ["train", "--fresh", "--source", f"folder:{PACS / 'photo'}", "--target", f"folder:{PACS / 'sketch'}",
                        "--backbone", "efficientnet_lite0", "--method", m, "--seed", str(seed), *flags, "--json",
                        "--quiet"]
                out, wall, err = tl(args, env)
                command = "python -m tl_core " + " ".join(args[:-1]).replace(str(SHARED), "$TL_DATA_DIR")
                row = {**_table.provenance("folder_recipe", command, (out or {}).get("provenance")), "variant": name,
                       "what": what, "flags": " ".join(flags), "method": m, "seed": seed, "process_wall_s": wall}
                if out is None:
                    row.update(status="failed", error=err)
                else:
                    row.update({k: out.get(k) for k in ("status", "target_acc", "source_acc", "wall_s")})
                _table.append("folder_recipe", row)
                print(f"{name} {m} seed {seed}: {row.get('target_acc')} in {wall:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
