"""The host's speed probe: a few training steps of the default run (LeNet, DANN, MNIST-sized source and
USPS-sized target batches) through the real trainer, on this run's thread count, timed by the wall clock.
`planning.speed` runs it in a subprocess (`python -m tl_core.training.probe`) once per machine: a run is
mostly these steps, so their time tracks a run's time from host to host, where the CPU time of a bare
convolution on one thread did not (docs/BENCHMARKS.md, "Estimates before the first run"). Synthetic images, so it needs no data and reads nothing from disk.

Prints one line of JSON: `step_s` (the fastest of three timings of STEPS steps, seconds a step),
`step_cpu_s` (the same steps' CPU time a step over the threads: equal to `step_s` on a quiet machine, whose
threads never wait, and far less inflated than the wall when others hold the cores), `cpu_s` (the process's
whole CPU time, so the caller can tell its own work from others' on the machine) and `threads`."""
from __future__ import annotations

import json
import os
import time

STEPS, REPEATS, WARMUP, IMAGES = 20, 3, 5, 512


def measure() -> dict[str, float]:
    import torch

    from tl_core.config import RunConfig
    from tl_core.data.domains.base import DomainData
    from tl_core.data.loaders import RunData
    from tl_core.training.trainer import Trainer

    g = torch.Generator().manual_seed(0)
    classes = [str(i) for i in range(10)]

    def domain(name: str, size: int) -> DomainData:
        x = torch.randint(0, 256, (IMAGES, 1, size, size), dtype=torch.uint8, generator=g)
        y = torch.arange(IMAGES) % 10
        return DomainData(name, classes, x, y, x[:64], y[:64])

    src, tgt = domain("mnist", 28), domain("usps", 16)
    idx = torch.arange(IMAGES)
    data = RunData(classes, src, tgt, idx[:-64], idx[-64:], idx, idx[:0], tgt.y_train, tgt.y_test)
    cfg = RunConfig().replace(data={"source": "mnist", "target": "usps"}, method={"name": "dann", "params": {}},
                              train={"device": "cpu", "embedding": "none"})
    trainer = Trainer(cfg, data=data)
    trainer.setup()
    for i in range(WARMUP):
        trainer.train_step(i, 0)
    threads = torch.get_num_threads()
    wall = cpu = float("inf")
    for _ in range(REPEATS):
        t, c = time.perf_counter(), time.process_time()
        for i in range(STEPS):
            trainer.train_step(i, 0)
        wall = min(wall, (time.perf_counter() - t) / STEPS)
        cpu = min(cpu, (time.process_time() - c) / STEPS / threads)
    total = os.times()
    return {"step_s": wall, "step_cpu_s": cpu, "cpu_s": total.user + total.system, "threads": threads}


if __name__ == "__main__":
    print(json.dumps(measure()))
