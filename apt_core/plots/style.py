"""One plotly template for every figure: projector-legible text (>= 14 px, near-black)."""
from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

INK = "#111111"

#: plotly_white with larger, darker text; passed as ``template=`` (the global default is left alone).
#: Only the trace types we draw keep plotly_white's trace defaults: a figure copies and validates
#: its whole template, and the full one (every trace type) cost 11 ms per figure against 5 ms, a
#: large share of a live slider move that redraws five figures.
_WHITE = pio.templates["plotly_white"]
TEMPLATE = go.layout.Template(layout=_WHITE.layout, data={kind: _WHITE.data[kind] for kind in ("bar", "box", "scatter", "histogram")})
TEMPLATE.layout.font = dict(size=15, color=INK)
TEMPLATE.layout.title = dict(font=dict(size=18, color=INK))
TEMPLATE.layout.legend = dict(font=dict(size=14, color=INK))
for _axis in ("xaxis", "yaxis"):
    TEMPLATE.layout[_axis].update(tickfont=dict(size=14, color=INK), title=dict(font=dict(size=15, color=INK)))
