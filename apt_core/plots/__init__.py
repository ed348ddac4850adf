"""Figures and tables shared by the dashboard and the command line (pure functions).

``results`` (experiment results: tables, rank-shift box plots, sweep curves) and
``explore`` (data exploration, written for the dashboard).  Every function takes data
(a ScenarioResult or a tidy DataFrame) and returns a plotly Figure or a DataFrame; none
touches Streamlit, files or global state.
"""
from __future__ import annotations
