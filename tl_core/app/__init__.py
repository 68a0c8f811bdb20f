"""The app's side of tl_core: the facade the pages call (api), its parts (one module per subject) and
the Plotly charts (plots). Pages import tl_core.app.api and tl_core.app.plots, nothing else."""
