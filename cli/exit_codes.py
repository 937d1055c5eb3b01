"""Exit codes of `python run_local.py` and its commands (the README lists them)."""

OK = 0
COMPONENT_FAILED = 1  # a component failed (or the Kubeflow compile or submit did)
BAD_SETTINGS = 2  # bad settings or inputs found before anything ran
DATA_REFUSED = 3  # the data gate refused the data
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
TERMINATED = 143  # SIGTERM (128 + SIGTERM)
