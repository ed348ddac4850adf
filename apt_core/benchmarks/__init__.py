"""Benchmarks: timings of each pipeline stage, at scale, and of the other victims."""
