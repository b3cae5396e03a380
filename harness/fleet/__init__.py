"""Sweeps across machines: a fleet of Ray nodes, each offering its devices."""
