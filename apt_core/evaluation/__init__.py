"""Evaluation: hit ratios, rank shift, RI, and the stealth statistics of fake profiles."""
