"""How a cell measures: the clock and its statistics (`timing.py`), memory per source (`memory.py`),
the validity verdict (`validity.py`), parity maths (`parity.py`) and the machine's facts
(`environment.py`)."""
