"""The record sink: a run's events written into the run store, wherever the run trains."""
from __future__ import annotations

import json

from tl_core.base import events as ev
from tl_core.base.paths import atomic_write_text
from tl_core.store import Store
from tl_core.data.thumbs import save_predictions


class StoreSink:
    """Writes the trainer's events into the store (and embeddings into the run folder)."""

    def __init__(self, st: Store, run_id: str):
        self.st, self.run_id = st, run_id
        self.dir = st.run_dir(run_id)
        self.cancel_reason = "cancelled"  # the worker says why when it stops a run itself (a time limit)
        self.stop_status = "cancelled"  # or "interrupted": stopped by a signal, not by a user's cancel

    def __call__(self, e) -> None:
        st, rid = self.st, self.run_id
        if isinstance(e, ev.Progress):
            st.write_progress(rid, e.epoch, e.step, e.total_steps, e.images_per_s, e.eta_s, e.losses)
        elif isinstance(e, ev.RunStarted):
            st.update(rid, device=e.device, trainable_params=e.trainable_params, total_params=e.total_params,
                      **({"epochs": e.epochs} if e.epochs else {}),
                      **({"provenance": json.dumps(e.provenance, sort_keys=True)} if e.provenance else {}))
            st.add_event(rid, e.kind, e.to_dict())
        elif isinstance(e, ev.EpochEnd):
            m = e.metrics
            st.add_metrics(rid, e.epoch, m, {"epoch": e.epoch, "source_acc": m["source_acc"],
                                             "target_acc": m["target_acc"], "wall_s": m["wall_s"]})
        elif isinstance(e, ev.EmbeddingReady):
            path = self.dir / "embed" / f"epoch_{e.epoch:04d}.json"
            atomic_write_text(path, json.dumps({"epoch": e.epoch, "method": e.method, **e.points}))
            st.add_event(rid, e.kind, {"epoch": e.epoch, "method": e.method})
        elif isinstance(e, ev.PredictionsReady):
            # the last evaluated epoch's (a running run's confusion cells), and the best epoch's when it differs
            for name in ("last", "best") if e.best else ("last",):
                save_predictions(self.dir / "predictions" / f"{name}.npz", e.epoch, e.tables, e.spec)
        elif isinstance(e, (ev.CheckpointSaved, ev.BatchHalved)):
            st.add_event(rid, e.kind, e.to_dict())
        elif isinstance(e, ev.RunFinished):
            res = e.result
            # the reported accuracies are the selected epoch's, not the last one's
            ci = res.get("target_acc_estimate_ci")
            st.update(rid, best_epoch=res["best_epoch"],
                      source_acc=res["source_acc"], target_acc=res["target_acc"],
                      target_n=res.get("target_n") or None, target_eval=res.get("target_eval") or "",
                      target_acc_estimate=res.get("target_acc_estimate"),
                      target_acc_estimate_ci=json.dumps(ci) if ci else "")
            st.finish_if_active(rid, "finished", "")
        elif isinstance(e, ev.RunFailed):
            st.finish_if_active(rid, "failed", e.reason)
        elif isinstance(e, ev.RunCancelled):
            st.finish_if_active(rid, self.stop_status, self.cancel_reason)


def duration_words(seconds: float) -> str:
    """A duration as people say it: '10 s', '2 min', '1 min 30 s', '1 h 5 min'."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{m} min" + (f" {r} s" if r else "")
    h, r = divmod(s, 3600)
    return f"{h} h" + (f" {r // 60} min" if r // 60 else "")


def wall_limit_reason(limit_s: float, own_time: bool = True) -> str:
    """Why a run was stopped at the server's limit per run; `own_time`: counted in the run's own CPU time
    over its threads (a local worker), else in wall time (a Ray task, timed by its driver)."""
    how = ("counted in the run's own CPU time over its threads, so waiting for a busy machine does not count"
           if own_time else "counted in wall time on the cluster")
    return (f"stopped at the time limit of {duration_words(limit_s)} per run set by the server's owner "
            f"(TL_QUOTA_RUN_WALL_S; {how}); the last checkpoint is kept. Plan fewer epochs or steps.")
