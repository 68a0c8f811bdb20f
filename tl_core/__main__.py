import sys

# a training process goes straight to its entry: the command line's own imports (the advisor, the
# experiments, the app's helpers) would cost every run's start for nothing
if len(sys.argv) == 3 and sys.argv[1] == "worker":
    from tl_core.runs.worker import worker_main

    sys.exit(worker_main(sys.argv[2]))
if len(sys.argv) == 2 and sys.argv[1] == "warm":
    from tl_core.runs.warm import warm_main

    sys.exit(warm_main())

# a command that follows its runs starts the warm process first: it imports torch and the library while this
# process does the same, and the first run is forked from it instead of starting cold. Not on a machine whose
# speed probe is not kept yet: the probe, taken beside the warm process's imports, would read it busy.
if len(sys.argv) > 1 and sys.argv[1] in ("train", "experiment") and not {"--detach", "--show", "-h", "--help"} & set(
        sys.argv):
    from tl_core.base.paths import tl_home
    from tl_core.runs.local import start_warm_at
    from tl_core.planning.speed import probe_known

    if probe_known():
        start_warm_at(tl_home())

from tl_core.cli import main  # noqa: E402

sys.exit(main())
