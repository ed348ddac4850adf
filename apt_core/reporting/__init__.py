"""Reporting: the paper's numbers, the reproduce grid and its Markdown report."""
