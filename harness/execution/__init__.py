"""Where cells run: the executor interface (`executor.py`) and its first implementation, fresh local
processes (`local.py`). The sweep submits jobs and collects results; it never starts a process itself."""
