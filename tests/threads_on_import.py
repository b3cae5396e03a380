"""Imported by a zygote in tests/test_isolation.py: starts an idle thread on import, as OpenVINO 2026 does."""

import threading

_idle = threading.Event()
threading.Thread(target=_idle.wait, name="started-on-import", daemon=True).start()
