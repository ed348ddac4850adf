"""What the dashboard's pages share, one module per concern (a subfolder, so Streamlit never lists it as a page).

Pages stay thin: widgets -> one ``apt_core`` call (through :func:`pages._shared.runs.run_cached`) ->
a figure or table from a pure function.

- :mod:`~pages._shared.settings`: the sidebar's settings; safe mode and presenter mode
- :mod:`~pages._shared.uploads`: uploaded rating files (a private folder per session) and loading data sets
- :mod:`~pages._shared.runs`: results kept per scenario, the Run button, cache-only reads
- :mod:`~pages._shared.grid_panel`: live controls: the background grid build and its progress bar
- :mod:`~pages._shared.widgets`: attack controls and the generated hyper-parameter controls
- :mod:`~pages._shared.display`: tables for the screen, downloads, views built once per result
- :mod:`~pages._shared.url_state`: the controls' values in the URL
- :mod:`~pages._shared.history_glue`: recording runs in the history with a link back to the page
- :mod:`~pages._shared.page_guard`: every page body through app.py, errors as messages
- :mod:`~pages._shared.glossary`: the tooltips' plain-language explanations
"""
