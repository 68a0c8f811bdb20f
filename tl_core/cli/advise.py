"""`advise`: before training, rank backbones, freeze depths and methods for a pair."""
from __future__ import annotations

import json

from tl_core import experiments
from tl_core.advice import advisor
from tl_core.config import parse_seeds
from tl_core.scores.transferability import SCORES


def cmd_advise(args) -> int:
    """Rank (backbone, freeze depth, method) for a pair before training; --launch checks the advice."""
    out = advisor.advise(args.source, args.target, seed=args.seed, probe=not args.no_probe)
    if args.launch:
        spec = advisor.grid(out, seeds=parse_seeds(args.seeds) or (0, 1, 2))
        out["experiment_id"] = experiments.launch(spec, name=spec.title)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{args.source} -> {args.target}: {out['summary']}")
    if out["warning"]:
        print(f"note: {out['warning']}")
    print("candidate                                  method        predicted target acc (95 %)   gain over source only"
          + ("   probe: composite, ATC (no target labels)" if out.get("probes") else ""))
    for r in out["recommendations"][:8]:
        pred = gain = ""
        if r.get("predicted_acc") is not None:
            lo, hi = r["predicted_acc_ci"]
            glo, ghi = r["predicted_gain_ci"]
            pred = f"{100 * r['predicted_acc']:5.1f} % [{100 * lo:.0f}, {100 * hi:.0f}]"
            gain = f"{100 * r['predicted_gain']:+5.1f} [{100 * glo:+.0f}, {100 * ghi:+.0f}]"
        p = r.get("probe")
        probe = "" if not p else f"   {p['composite']:.2f}, " + ("-" if p["atc"] is None else
                                                              f"{100 * p['atc']:.0f} % [{100 * p['atc_ci'][0]:.0f}, "
                                                              f"{100 * p['atc_ci'][1]:.0f}]")
        print(f"{r['candidate'][:42]:42s} {r['method']:13s} {pred:28s}  {gain:21s}{probe}")
    if out["recommendations"]:
        print("why: " + " ".join(out["recommendations"][0]["reasons"]))
    print("scores (no target label read):")
    for s in out["scores"]:
        print(f"  {s['label']}: " + ", ".join(sc.show(s[sc.key]) for sc in SCORES if sc.key != "log_target_images"))
    tr = out["track_record"]
    if tr:
        print(f"track record (held out, {tr['cells']} measured cells over {tr['pairs']} pairs): median Kendall tau "
              f"{tr['kendall_tau_median']:.2f}, AUROC {tr['auroc_beats_source_only'] or float('nan'):.2f} "
              f"(docs/BENCHMARKS.md)")
    if out.get("probes"):
        print(f"probes: {len(out['probes'])} trained or read back in {out['probe_s']:.0f} s, ranked by the composite of "
              f"label-free validators (ensemble agreement, batch nuclear norm, ClassAMI, source hold-out)")
    if out.get("experiment_id"):
        print(f"checking it: experiment {out['experiment_id']} (python -m tl_core experiment --show {out['experiment_id']})")
    print(f"({out['wall_s']:.0f} s)")
    return 0


def add_parser(sub) -> None:
    pa = sub.add_parser("advise", help="before training: rank backbones, freeze depths and methods for a pair, "
                        "with predicted accuracies and their intervals")
    pa.add_argument("--source", required=True)
    pa.add_argument("--target", required=True)
    pa.add_argument("--seed", type=int, default=0, help="which images the scores read")
    pa.add_argument("--launch", action="store_true", help="launch the grid that checks the advice (the "
                    "recommendation, the runner-up and source only, over --seeds)")
    pa.add_argument("--seeds", default="0,1,2")
    pa.add_argument("--no-probe", action="store_true", help="scores and the predictor only: no probe trains")
    pa.add_argument("--json", action="store_true")
    pa.set_defaults(fn=cmd_advise)
