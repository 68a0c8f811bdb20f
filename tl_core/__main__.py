import sys

# a training process goes straight to its entry: the command line's own imports (the advisor, the
# experiments, the app's helpers) would cost every run's start for nothing
if len(sys.argv) == 3 and sys.argv[1] == "worker":
    from .runs.worker import worker_main

    sys.exit(worker_main(sys.argv[2]))
if len(sys.argv) == 2 and sys.argv[1] == "warm":
    from .runs.warm import warm_main

    sys.exit(warm_main())

from .cli import main  # noqa: E402

sys.exit(main())
