"""Backend-free figures: every selfsup plot is drawn on a ``matplotlib.figure.Figure`` it creates itself.

No module here selects a matplotlib backend (that would replace a notebook's inline backend); saving with
``fig.savefig`` needs none, and a notebook shows a returned ``Figure`` as its cell output.

``subplots(nrows=1, ncols=1, *, squeeze=True, subplot_kw=None, **fig_kw) -> (Figure, axes)``: like
``pyplot.subplots`` without pyplot's global state. ``cmap(name)``: a registered colormap.
"""
from __future__ import annotations


def subplots(nrows: int = 1, ncols: int = 1, *, squeeze: bool = True, subplot_kw=None, **fig_kw):
    from matplotlib.figure import Figure
    fig = Figure(**fig_kw)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze, subplot_kw=subplot_kw)


def cmap(name: str):
    from matplotlib import colormaps
    return colormaps[name]
