"""Reports: the paper's figures and tables, the best model under constraints, and deployment checks.

Pure functions of records (`data.load`): nothing here runs a benchmark.
"""
