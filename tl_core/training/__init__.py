"""Training one run: the loop, its optimiser, evaluation, and the state a run resumes from."""
