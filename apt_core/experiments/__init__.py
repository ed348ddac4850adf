"""Experiments: a scenario, the pipeline that runs it, the artifact cache keys, engines, the classroom grid, sweeps."""
