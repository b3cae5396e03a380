"""What runs inside one job's fresh process (`worker.py`): prepare a model's artifacts, or measure one
cell — bench, parity or accuracy — through the runtime contract."""
