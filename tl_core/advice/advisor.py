"""Know before you train: which backbone, freeze depth and method are likely to work on a pair.

For each candidate (backbone, freeze depth) the advisor computes the features of a sample of the
source and the target once (cached by the domains' fingerprints), scores them (`transferability`:
LogME, H-score, leave-one-out k-NN on the source labels; a centroid margin, the domain gap and the
source head's entropy and class balance on the unlabelled target) and reads the target accuracy of
each method off a predictor fitted on measured runs (`bench/advisor.py` fits it, validates it
leave-one-pair-out and writes `advisor_model.json` beside this file). Each prediction carries an
interval from the predictor's held-out errors, and the predictor's own track record travels with
every answer.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from tl_core.models.backbones import backbone_info, build_backbone
from tl_core.config import RunConfig
from tl_core.base.errors import ConfigError, TLError
from tl_core.data.loaders import stratified_pick
from tl_core.data.domains import check_label_spaces, get_domain
from tl_core.data.domains.folder import FolderDomain
from tl_core.data.domains.shift import ShiftedDomain
from tl_core.experiments.spec import Strategy, ExperimentSpec
from tl_core.base.inputs import adapt
from tl_core.base.limits import setting
from tl_core.methods import get_method
from tl_core.advice import probes
from tl_core.base.paths import atomic_write_bytes, cache_dir
from tl_core.planning.planner import DEFAULT_BUDGET_S
from tl_core.planning.provenance import fingerprint
from tl_core.runs.procs import proc_start
from tl_core.store import store
from tl_core.training.trainer import Trainer
from tl_core.scores.transferability import SCORES, score_all

MODEL_FILE = Path(__file__).with_name("advisor_model.json")
PROBE_RECORD_FILE = Path(__file__).with_name("probe_record.json")  # written by bench/probes.py
PER_DOMAIN = 400  # images of each domain the scores read (stratified over the classes)
SCORE_SIZE = 128  # input size of pretrained backbones for scoring (a CPU computes it in seconds)
PRETRAINED = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")  # weights that install offline
LENET_STEPS = 300  # LeNet's brief source training before its features are scored
TAU_TARGET, AUROC_TARGET = 0.6, 0.8  # the held-out record that would make the predictions trustworthy
PROBE_AUROC_TARGET = 0.75  # the probes' (issue 31), with the lower end of its interval above 0.5
FEATURES = tuple(s.key for s in SCORES)


@dataclass(frozen=True)
class Candidate:
    """A backbone and how many of its stages stay frozen (LeNet: none, it learns from scratch)."""

    backbone: str
    freeze: int

    @property
    def label(self) -> str:
        info = backbone_info(self.backbone)
        n = len(info.stages)
        if not info.has_pretrained:
            return f"{info.label} (from scratch)"
        return f"{info.label}, {'all' if self.freeze == n else self.freeze} of {n} stages frozen"


def candidates(source: str, target: str) -> list[Candidate]:
    """The (backbone, depth) pairs worth scoring for a pair: LeNet for small grey images (digits); each
    EfficientNet-Lite with its weights on this machine all frozen (the planner's default behind a
    bottleneck), and Lite0 also with its last two stages trainable (the larger Lites cost more to train
    than a CPU run affords)."""
    out = []
    small = max(get_domain(source).native_size, get_domain(target).native_size) <= 32
    if small:
        out.append(Candidate("lenet", 0))
    for name in PRETRAINED:
        info = backbone_info(name)
        ok, _ = info.weights_status()
        if ok:
            n = len(info.stages)
            out += [Candidate(name, n)] + ([Candidate(name, n - 2)] if name == "efficientnet_lite0" else [])
    return out


# -- features ----------------------------------------------------------------------------------

def _sample(y: torch.Tensor, k: int, n: int, seed: int) -> torch.Tensor:
    return stratified_pick(y, max(1, n // k), k, torch.Generator().manual_seed(seed))


def _lenet_features(source: str, target: str, xs: torch.Tensor, xt: torch.Tensor, seed: int) -> tuple:
    """LeNet trained briefly on the source (its features mean nothing before), then read on both."""
    cfg = RunConfig().replace(data={"source": source, "target": target},
                              model={"backbone": "lenet"}, method={"name": "source_only", "params": {}},
                              train={"epochs": 1, "steps_per_epoch": LENET_STEPS, "seed": seed,
                                     "embedding": "none", "batch_size": 64})
    t = Trainer(cfg)
    t.setup()
    t.fit()
    return t.backbone_features(xs).numpy(), t.backbone_features(xt).numpy()


@torch.no_grad()
def _pretrained_features(c: Candidate, x: torch.Tensor) -> np.ndarray:
    bb = build_backbone(c.backbone, pretrained=True, input_size=SCORE_SIZE, in_channels=3, freeze=c.freeze).eval()
    out = []
    for i in range(0, len(x), 64):
        h = bb.prefix(adapt(x[i:i + 64], bb.input_spec))
        out.append(bb.pool(h) if c.freeze == len(bb.stages) else h.mean((2, 3)))
    return torch.cat(out).float().numpy()


class _Pair:
    """What the scores read of a pair: the cache tag of the domains' contents and the image sample, and
    the sample itself, decoded only when a candidate is not already cached. A folder (or an upload, or a
    shift of one) is sampled, never decoded whole: at most PER_DOMAIN / classes images per class."""

    def __init__(self, source: str, target: str, seed: int):
        self.source, self.target, self.seed = source, target, seed
        self.sd, self.td = get_domain(source), get_domain(target)
        keys = [_content_key(d) for d in (self.sd, self.td)]
        self.tag = f"{SCORE_SIZE}-{PER_DOMAIN}-{seed}-{keys[0]}-{keys[1]}"
        self._arrays: tuple | None = None

    def arrays(self) -> tuple:
        """(source images, source labels, target images, target labels in the source's class order,
        source training images, target images): the sample the features are computed on."""
        if self._arrays is None:
            self._arrays = self._read()
        return self._arrays

    def _read(self) -> tuple:
        sd, td, seed = self.sd, self.td, self.seed
        classes_s, classes_t = list(sd.classes), list(td.classes)
        remap = torch.tensor([classes_s.index(name) for name in classes_t])
        if _samples(sd):
            xs, ys, n_s = sd.sample(max(1, PER_DOMAIN // len(classes_s)), seed, SCORE_SIZE, ("train",))
        else:
            d = sd.load()
            i_s = _sample(d.y_train, len(classes_s), PER_DOMAIN, seed)
            xs, ys, n_s = d.x_train[i_s], d.y_train[i_s], len(d.x_train)
        if _samples(td):
            xt, yt, n_t = td.sample(max(1, PER_DOMAIN // len(classes_t)), seed + 1, SCORE_SIZE, ("train", "test"))
        else:
            d = td.load()
            xt_all, yt_all = torch.cat([d.x_train, d.x_test]), torch.cat([d.y_train, d.y_test])
            i_t = _sample(yt_all, len(classes_t), PER_DOMAIN, seed + 1)
            xt, yt, n_t = xt_all[i_t], yt_all[i_t], len(xt_all)
        return xs, ys, xt, remap[yt], n_s, n_t


def _samples(dom) -> bool:
    """Whether a domain is read by sampling its files (a folder, an upload, or a shift of one)."""
    while isinstance(dom, ShiftedDomain):
        dom = dom.base
    return isinstance(dom, FolderDomain)


def _content_key(dom) -> str:
    """What identifies a domain's contents for the cache: a folder's listing (names, sizes, times: no
    decoding), a built-in's decoded fingerprint (decoded once, cached on disk anyway)."""
    if _samples(dom):
        return "f" + hashlib.sha256(dom.cache_key().encode()).hexdigest()[:15]
    return fingerprint(dom.load())


def _pair(source: str, target: str, seed: int) -> _Pair:
    return _Pair(source, target, seed)


def features(c: Candidate, source: str, target: str, seed: int = 0, pair: _Pair | None = None) -> dict[str, np.ndarray]:
    """Source features and labels, target features (labels kept for the bench only), for a candidate;
    computed once per (backbone, depth, domains' contents) and kept under TL_HOME/cache/advisor."""
    pair = pair or _pair(source, target, seed)
    path = cache_dir("advisor") / f"{c.backbone}-{c.freeze}-{pair.tag}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    xs, ys, xt, yt, n_s, n_t = pair.arrays()
    if c.backbone == "lenet":
        fs, ft = _lenet_features(source, target, xs, xt, seed)
    else:
        fs, ft = _pretrained_features(c, xs), _pretrained_features(c, xt)
    out = {"fs": fs, "ys": ys.numpy(), "ft": ft, "yt": yt.numpy(),
           "n_source": np.array(n_s), "n_target": np.array(n_t)}
    buf = io.BytesIO()
    np.savez(buf, **out)
    atomic_write_bytes(path, buf.getvalue())
    return out


def candidate_scores(c: Candidate, source: str, target: str, seed: int = 0, pair: _Pair | None = None) -> dict[str, float]:
    """`scores` of a candidate's features, kept beside them (a second question about a pair reads both)."""
    pair = pair or _pair(source, target, seed)
    path = cache_dir("advisor") / f"{c.backbone}-{c.freeze}-{pair.tag}.scores.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    out = scores(features(c, source, target, seed, pair))
    atomic_write_bytes(path, json.dumps(out).encode())
    return out


def scores(f: dict[str, np.ndarray]) -> dict[str, float]:
    """Every score of one candidate's features (no target label is read)."""
    return {**score_all(f["fs"], f["ys"], f["ft"], int(f["n_target"])),
            "source_images": int(f["n_source"]), "target_images": int(f["n_target"])}


# -- the predictor -----------------------------------------------------------------------------

def load_model(path: Path | None = None) -> dict[str, Any] | None:
    """The fitted predictor (default: the shipped `MODEL_FILE`; None when the bench has not written one)."""
    try:
        return json.loads(Path(path or MODEL_FILE).read_text())
    except (OSError, ValueError):
        return None


def design_row(s: dict[str, float], method: str, model: dict[str, Any]) -> np.ndarray:
    """The predictor's inputs for one (candidate scores, method): the standardised scores, a
    one-hot of the method, and the method's own slope on the domain gap."""
    mean, sd = np.array(model["mean"]), np.array(model["sd"])
    x = (np.array([s[k] for k in model["features"]], np.float64) - mean) / sd
    onehot = np.array([1.0 if method == m else 0.0 for m in model["methods"]])
    gap = onehot * x[model["features"].index("a_distance")]
    return np.concatenate([[1.0], x, onehot, gap])


def predict(s: dict[str, float], method: str, model: dict[str, Any]) -> float:
    """Predicted target accuracy (0..1) of `method` on a candidate with scores `s`."""
    z = float(design_row(s, method, model) @ np.array(model["coef"]))
    return 1.0 / (1.0 + math.exp(-z))  # the fit is on the logit of the accuracy


def _reasons(s: dict[str, float], method: str, gain: float, gain_ci: list[float], n_target: int) -> list[str]:
    """Plain sentences: what the scores say about the pair, and what the prediction says about the method."""
    far = s["a_distance"] > 1.5
    sep = s["knn"] >= 0.8
    out = [f"On these features the source classes are {'well' if sep else 'poorly'} separated (k-NN "
           f"{100 * s['knn']:.0f} %) and the domains are {'far apart' if far else 'close'} "
           f"(A-distance {s['a_distance']:.2f} of 2)."]
    if method == "source_only":
        out.append("The baseline every method is compared with.")
        return out
    lo, hi = gain_ci
    out.append(f"Predicted {100 * gain:+.1f} points over source only (95 % interval {100 * lo:+.0f} to "
               f"{100 * hi:+.0f}): " + ("a gain even at the interval's low end." if lo > 0 else
                                        "the interval includes no gain, so only an experiment can tell."))
    if get_method(method).family == "adversarial" and n_target < 500:
        out.append(f"With {n_target} target images an adversarial method has little to align; CORAL's statistics "
                   f"may be steadier.")
    return out


def _to_probe(recs: list[dict[str, Any]], table: list[dict[str, Any]]) -> list[list[tuple[str, int, str]]]:
    """What the probes may train, best first: each adapted (backbone, depth, method) in the predictor's order,
    with the source-only probe of its backbone and depth (a gain needs its baseline); without a predictor,
    DANN and CORAL on each candidate."""
    adapted = [r for r in recs if r["method"] != "source_only"] or [
        {"backbone": row["backbone"], "freeze": row["freeze"], "method": m} for row in table for m in ("dann", "coral")]
    return [[(r["backbone"], r["freeze"], "source_only"), (r["backbone"], r["freeze"], r["method"])] for r in adapted]


def _with_probes(recs: list[dict[str, Any]], probed: list[dict[str, Any]],
                 table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recommendations with each probe's figures attached, the probed ones first in the probes' composite
    order (a probe the predictor had no row for gets one of its own), the rest in the predictor's."""
    by_key = {(r["backbone"], r["freeze"], r["method"]): r for r in recs}
    labels = {(row["backbone"], row["freeze"]): row["label"] for row in table}
    first = []
    for p in probed:
        k = (p["backbone"], p["freeze"], p["method"])
        r = by_key.pop(k, None) or {"backbone": k[0], "freeze": k[1], "method": k[2],
                                    "candidate": labels.get(k[:2], k[0]), "predicted_acc": None,
                                    "predicted_acc_ci": None, "predicted_gain": None, "predicted_gain_ci": None,
                                    "reasons": []}
        r = {**r, "probe": p, "composite": p["composite"]}
        r["reasons"] = list(r["reasons"]) + [_probe_words(p)]
        first.append(r)
    return first + list(by_key.values())


def _probe_words(p: dict[str, Any]) -> str:
    v = p["validators"]
    atc = "" if p["atc"] is None else (f"; its target accuracy, estimated without target labels (ATC), "
                                       f"{100 * p['atc']:.0f} % [{100 * p['atc_ci'][0]:.0f}, {100 * p['atc_ci'][1]:.0f}]")
    gain = "" if p.get("atc_gain") is None else (f", {100 * p['atc_gain']:+.1f} points over the source-only probe "
                                                 f"[{100 * p['atc_gain_ci'][0]:+.0f}, {100 * p['atc_gain_ci'][1]:+.0f}]")
    ens = f", agrees with the probes' ensemble on {100 * v['ensemble']:.0f} %" if "ensemble" in v else ""
    return (f"Probe ({p['steps']} of the planned {p['planned_steps']} steps{', read back' if p['cached'] else ''}): "
            f"composite {p['composite']:.2f} of 1{ens}, source hold-out {100 * v['source_val_acc']:.0f} %{atc}{gain}.")


def _probe_summary(lead: dict[str, Any]) -> str:
    p = lead["probe"]
    if lead["method"] == "source_only":
        return (f"Source only on {lead['candidate']} leads the probes (composite {p['composite']:.2f}): no probed "
                f"adaptation method looks better than none on this pair after a quarter of the training.")
    gain = p.get("atc_gain")
    says = ("" if gain is None else
            f", and ATC reads it {100 * gain:+.1f} points over source only after a quarter of the training"
            + (" (within the estimate's interval: only the experiment can tell)" if p["atc_gain_ci"][0] <= 0 < gain
               else ""))
    return f"{get_method(lead['method']).label} on {lead['candidate']} leads the probes (composite {p['composite']:.2f}){says}."


def advise(source: str, target: str, seed: int = 0, methods: tuple[str, ...] | None = None,
           on_progress: Callable[[str, float], None] | None = None, probe: bool = True) -> dict[str, Any]:
    """The ranked recommendations for a pair, the scores behind them and how long it took;
    `on_progress(words, fraction)` hears of each candidate as its scoring starts. With `probe` (and
    TL_ADVISOR_PROBE_S > 0) the leading candidates also train briefly (`probes`) and are ranked by the
    label-free validators of what they learnt."""
    t0 = time.perf_counter()
    check_label_spaces(get_domain(source), get_domain(target))
    model = load_model()
    pair = _pair(source, target, seed)
    table = []
    todo = candidates(source, target)
    probing = probe and float(setting("TL_ADVISOR_PROBE_S")) > 0
    share = 0.4 if probing else 1.0  # of the progress bar: the scores, then the probes
    for i, c in enumerate(todo):
        if on_progress is not None:
            on_progress(f"scoring {c.label} ({i + 1} of {len(todo)})", share * i / max(len(todo), 1))
        s = candidate_scores(c, source, target, seed, pair)
        table.append({"backbone": c.backbone, "freeze": c.freeze, "label": c.label, **s})
    recs = []
    if model is not None:
        methods = tuple(m for m in (methods or model["methods"]) if m in model["methods"])
        for row in table:
            base = predict(row, "source_only", model)
            for m in methods:
                acc = predict(row, m, model)
                gain = acc - base
                half, ghalf = 1.96 * model["resid_sd"], 1.96 * model["gain_resid_sd"]
                recs.append({"backbone": row["backbone"], "freeze": row["freeze"], "candidate": row["label"],
                             "method": m, "predicted_acc": round(acc, 4),
                             "predicted_acc_ci": [round(max(0.0, acc - half), 4), round(min(1.0, acc + half), 4)],
                             "predicted_gain": round(gain, 4),
                             "predicted_gain_ci": [round(gain - ghalf, 4), round(gain + ghalf, 4)] if m != "source_only"
                             else [0.0, 0.0],
                             "reasons": _reasons(row, m, gain, [gain - ghalf, gain + ghalf],
                                                 int(row["target_images"]))})
        recs.sort(key=lambda r: -r["predicted_acc"])
    best_gain = max((r["predicted_gain_ci"][0] for r in recs if r["method"] != "source_only"), default=0.0)
    summary = ("" if model is None else
               "Nothing is predicted to beat source only by more than the predictor's interval on this pair."
               if best_gain <= 0 else
               f"{recs[0]['method']} on {recs[0]['candidate']} is predicted best.")
    probed, probe_s, skipped = [], 0.0, []
    if probing and table:
        tell = None if on_progress is None else (lambda words, f: on_progress(words, share + (1 - share) * f))
        probed, probe_s, skipped = probes.probe_all(source, target, _to_probe(recs, table),
                                                    int(setting("TL_ADVISOR_PROBES")), seed, tell)
        recs = _with_probes(recs, probed, table)
        if probed:
            summary = _probe_summary(recs[0])
    predictor_tr = {k: v for k, v in (model or {}).get("track_record", {}).items() if k != "held_out"}
    ranked_by = "probes" if probed else "predictor"
    tr = {**load_probe_record(), "ranked_by": "probes"} if probed else {**predictor_tr, "ranked_by": "predictor"}
    reliable = reliable_record(tr)
    warning = "" if reliable else _record_warning(tr)
    if model is None and not probed:
        summary = "No fitted predictor on this machine (run bench/advisor.py): the scores alone are shown."
    return {"source": source, "target": target, "recommendations": recs, "scores": table, "reliable": reliable,
            "warning": warning, "probes": probed, "probe_s": probe_s, "probes_skipped": skipped, "summary": summary,
            "ranked_by": ranked_by, "track_record": tr, "predictor_record": predictor_tr,
            "wall_s": round(time.perf_counter() - t0, 2)}


def load_probe_record() -> dict[str, Any]:
    """The probes' record against full runs (bench/probes.py writes it beside this file; {} before it has run)."""
    try:
        return json.loads(PROBE_RECORD_FILE.read_text())
    except (OSError, ValueError):
        return {}


def reliable_record(tr: dict[str, Any]) -> bool:
    """Whether a record meets the targets that make its rankings worth acting on: for the probes, median Kendall
    tau >= 0.6 and an AUROC of 'beats source only' >= 0.75 with its interval above 0.5; for the predictor, tau
    >= 0.6 and AUROC >= 0.8 (its targets when it was built)."""
    tau, roc = tr.get("kendall_tau_median"), tr.get("auroc_beats_source_only")
    if tau is None or roc is None:
        return False
    if tr.get("ranked_by") == "probes":
        return tau >= TAU_TARGET and roc >= PROBE_AUROC_TARGET and (tr.get("auroc_ci") or [0.0])[0] > 0.5
    return tau >= TAU_TARGET and roc >= AUROC_TARGET


def _record_warning(tr: dict[str, Any]) -> str:
    roc = tr.get("auroc_beats_source_only")
    if tr.get("kendall_tau_median") is None:
        return (f"The {tr.get('ranked_by', 'advisor')} ranking this answer has no measured record on this install "
                f"(bench/{'probes' if tr.get('ranked_by') == 'probes' else 'advisor'}.py writes it): check it with the "
                f"experiment it proposes.")
    if tr.get("ranked_by") == "probes":
        ci = tr.get("auroc_ci") or [float("nan")] * 2
        return (f"The probes' record against full runs ({tr.get('pairs', 0)} pairs, bench/probes.py) is below what would "
                f"make this ranking reliable (median Kendall tau {tr['kendall_tau_median']:.2f}, target {TAU_TARGET}; "
                f"AUROC of 'beats source only' {roc if roc is not None else float('nan'):.2f} [{ci[0]:.2f}, {ci[1]:.2f}], "
                f"target {PROBE_AUROC_TARGET} with its interval above 0.5): check it with the experiment it proposes.")
    return (f"Its record on pairs held out of its fitting is below what would make it reliable (median Kendall tau "
            f"{tr['kendall_tau_median']:.2f}, target {TAU_TARGET}; AUROC of 'beats source only' "
            f"{roc if roc is not None else float('nan'):.2f}, target {AUROC_TARGET}): read these predictions as "
            f"rough guesses and check them with the experiment it proposes.")


def grid(result: dict[str, Any], seeds: tuple[int, ...] = (0, 1, 2), budget_s: float = DEFAULT_BUDGET_S) -> ExperimentSpec:
    """The experiment that checks the advice: the recommended (backbone, depth, method), the runner-up
    and source only on the recommended backbone, each over `seeds`, every run planned to `budget_s`."""
    recs = [r for r in result["recommendations"] if r["method"] != "source_only"]
    if not recs:
        raise ConfigError("The advisor has no recommendation to check (no fitted predictor on this machine).")
    best = recs[0]
    strategies = [Strategy(f"{get_method(best['method']).label} (recommended)", best["method"])]
    if len(recs) > 1:
        r = recs[1]
        model = {} if (r["backbone"], r["freeze"]) == (best["backbone"], best["freeze"]) else \
            {"backbone": r["backbone"], "freeze": r["freeze"]}
        strategies.append(Strategy(f"{get_method(r['method']).label} (runner-up)", r["method"], model=model))
    base = {"model": {"backbone": best["backbone"], "freeze": best["freeze"]}}
    return ExperimentSpec(result["source"], result["target"], tuple(strategies), tuple(seeds), base,
                          title=f"Advisor check: {best['method']} on {best['candidate']}", budget_s=budget_s).normalised()


# -- the advisor as a queued job ------------------------------------------------------------------

def job_main(job_id: str) -> int:
    """Entry of `python -m tl_core advice-worker ID`: answer one queued question to the advisor in this
    process (never in the web server), writing its progress and answer to the run store."""
    st = store()
    r = st.get_advice(job_id)
    if r is None or r["status"] != "starting":
        print(f"question {job_id} is not waiting to be answered ({r and r['status']})", file=sys.stderr)
        return 1
    st.update_advice(job_id, status="running", pid=os.getpid(), pid_start=proc_start(os.getpid()))
    try:
        os.nice(int(setting("TL_WORKER_NICE")))
    except (OSError, ValueError, AttributeError):
        pass
    torch.set_num_threads(max(1, int(setting("TL_THREADS")) or 1))

    def progress(words: str, fraction: float) -> None:
        st.update_advice(job_id, progress=words, fraction=round(float(fraction), 3))

    try:
        out = advise(r["source"], r["target"], on_progress=progress)
        st.update_advice(job_id, status="finished", result=json.dumps(out), fraction=1.0, ended=time.time(),
                         progress="answered")
    except TLError as e:
        st.update_advice(job_id, status="failed", reason=str(e), ended=time.time())
    except Exception as e:  # a bug of ours: the traceback in the job's log, a sentence for the page
        traceback.print_exc()
        st.update_advice(job_id, status="failed", ended=time.time(),
                         reason=f"The advisor failed ({type(e).__name__}); details are in the server's advice log.")
    return 0
