"""Execute every notebook in notebooks/ at its small size (SMOKE=1, read by each notebook's first code cell)
with Jupyter's inline backend, as a user would see it.

A notebook that raises fails its test; every cell meant to plot (it calls ``plt.subplots``, ``plt.figure``
or ``plt.show``, or returns a figure) must produce an ``image/png`` output, so a library module that selects
a backend (and so hides the figures) fails here; every notebook checks at least one number with ``assert``
(or ``np.testing``). The executed copy is not written back (notebooks stay output-free).
"""
import glob
import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
PLOTS = re.compile(r"plt\.(subplots|figure|show)\(|^fig$|\bdisplay\(fig", re.M)


def _plots(cell) -> bool:
    return bool(PLOTS.search(cell.source))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_executes_and_shows_its_figures_inline(path, monkeypatch):
    monkeypatch.setenv("SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    plotting = [c for c in code if _plots(c)]
    assert plotting, f"{path}: no cell draws a figure"
    for c in plotting:
        kinds = {k for o in c.get("outputs", []) for k in o.get("data", {})}
        assert "image/png" in kinds, f"{path}: the cell starting {c.source[:60]!r} showed no figure ({kinds})"


def test_every_notebook_reads_the_smoke_switch_and_asserts_a_number():
    for path in NOTEBOOKS:
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        assert "SMOKE" in code[0].source, f"{path}: the first code cell must read SMOKE"
        assert any(re.search(r"^\s*(assert |np\.testing\.assert)", c.source, re.M) for c in code), \
            f"{path}: no cell checks a number"
