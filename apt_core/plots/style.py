"""One plotly template for every figure: projector-legible text (>= 14 px, near-black; presenter mode
scales it with :func:`scaled`, ticks >= 18 px)."""
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
# Category axes keep their labels horizontal (wrapped, see wrap_label): a rotated label took the
# Overview chart's height away from its bars (~100 px left of 380).
TEMPLATE.layout.xaxis.update(tickangle=0)

#: Presenter mode's chart scale: the 14 px ticks become 18 px, every other text in proportion.
PRESENTER_SCALE = 18 / 14
_BASE_SIZES = {"font": 15, "title": 18, "legend": 14, "tick": 14, "axis_title": 15}


def wrap_label(text: str, width: int = 14) -> str:
    """``text`` broken at spaces into lines of at most ``width`` characters (plotly's ``<br>``), so that
    a category label stays horizontal instead of being rotated."""
    lines: list[str] = []
    for word in str(text).split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(lines)


def scaled(fig: go.Figure, font_scale: float = 1.0) -> go.Figure:
    """``fig`` with every text ``font_scale`` times the template's size (ticks, titles, legend, bar labels,
    annotations) and its margins grown to fit; the height stays (the figure must still fit the screen).  ``font_scale=1`` returns ``fig`` unchanged;
    :data:`PRESENTER_SCALE` is presenter mode's (ticks 18 px)."""
    if font_scale == 1.0:
        return fig
    size = {name: round(value * font_scale) for name, value in _BASE_SIZES.items()}
    fig.update_layout(font_size=size["font"], title_font_size=size["title"], legend_font_size=size["legend"])
    axis = dict(tickfont_size=size["tick"], title_font_size=size["axis_title"])
    fig.update_xaxes(**axis)
    fig.update_yaxes(**axis)
    for note in fig.layout.annotations or ():
        note.font.size = round((note.font.size or _BASE_SIZES["font"]) * font_scale)
    for trace in fig.data:
        if "textfont" in trace:
            trace.textfont.size = round((trace.textfont.size or _BASE_SIZES["font"]) * font_scale)
    margin = fig.layout.margin
    fig.update_layout(margin=dict(l=round((margin.l or 60) * font_scale), t=round((margin.t or 60) * font_scale),
                                  b=round((margin.b or 50) * font_scale), r=margin.r if margin.r is not None else 20))
    return fig
