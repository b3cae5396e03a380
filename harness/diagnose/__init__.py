"""`diagnose`: which ONNX nodes, kept in fp32, win back the top-1 a lower precision loses (pure search and
statistics here; the trials' files and answers in `trials`; the command in harness/cli/diagnose.py)."""
