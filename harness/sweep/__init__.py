"""The parent's side of a run: the plan of cells (`planning.py`), the sweep that turns cells into jobs,
ordered by dependencies, and appends their records (`sweep.py`), and run folders: lock, resume,
last run of a plan (`runs.py`)."""
