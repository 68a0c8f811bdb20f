"""What a run will be before it starts: the schedule and its estimate, the machine's measured speed, filling in defaults, the run's key and its provenance, the checks a config must pass."""
