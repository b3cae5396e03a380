"""What a user drives: the argument parser and commands (`main.py`), the checks and progress bar they
share (`common.py`), the accuracy command (`accuracy.py`), report/best/check (`reports.py`) and the
terminal tables (`tables.py`). Only this package prints with rich."""
