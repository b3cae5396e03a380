"""Loaded by every interpreter started with this folder on PYTHONPATH (tests only): in a harness worker
whose job measures (not one that prepares artifacts), importing torch fails — so a cell that imports
torch anyway is recorded as an error and the test sees it."""

import json
import sys


class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is blocked in measuring cells by tests/block_torch")
        return None


def _measuring_job() -> bool:
    try:
        envelope = json.loads(open(sys.argv[1]).read())
    except (IndexError, OSError, ValueError):
        return False
    return isinstance(envelope, dict) and envelope.get("request", {}).get("mode") not in (None, "prepare")


if _measuring_job():
    sys.meta_path.insert(0, _NoTorch())
