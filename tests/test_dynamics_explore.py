"""`dynamics.explore` headless (issue 26 §4): values set in code move the drawn trajectories and fixed points
to the new fixed points (closed forms of docs/theory.md section 3); the ipywidgets layer when installed."""
import numpy as np
import pytest

from dynamics.explore import Explorer


def _p_plus(eta, sigma2=0.5, l=1.0):
    c = l + sigma2
    return (l + np.sqrt(l**2 - 4 * eta * c)) / (2 * c)


def test_setting_values_moves_the_drawn_data_to_the_new_fixed_points():
    ex = Explorer("simsiam", modes=1, exponent=0.0, wd=0.05, sigma2=0.5, t_max=300.0)
    s_line = ex.ax_time.get_lines()[0]
    assert s_line.get_ydata()[-1] == pytest.approx(_p_plus(0.05) ** 2, rel=1e-6)  # 0.374813 (Tian21)
    ex.set(wd=0.1)
    s_line = ex.ax_time.get_lines()[0]  # redrawn
    assert s_line.get_ydata()[-1] == pytest.approx(_p_plus(0.1) ** 2, rel=1e-6)
    markers = [(ln.get_xdata()[0], ln.get_ydata()[0]) for ln in ex.ax_plane.get_lines()
               if ln.get_marker() == "o"]
    assert markers[-1] == pytest.approx((_p_plus(0.1), _p_plus(0.1) ** 2), rel=1e-12)  # the stable one
    ex.set(wd=0.2)  # past the threshold 1/6: the mode collapses and only the origin is left
    assert ex.ax_time.get_lines()[0].get_ydata()[-1] < 1e-6
    assert [fp.state["p"] for fp in ex.data["fixed_points"][0]] == [0.0]


def test_method_spectrum_and_plane_change_and_bad_values_are_named():
    ex = Explorer("phinet", modes=3, exponent=1.0, wd=0.02)
    assert ex.data["names"] == ("p", "g", "s") and len(ex.data["trajectories"]) == 3
    ex.set(method="xphinet", plane=("s", "tau_m"))
    assert ex.ax_plane.get_xlabel() == "s" and ex.ax_plane.get_ylabel() == "tau_m"
    with pytest.raises(ValueError, match="unknown value.*speed"):
        ex.set(speed=3)
    with pytest.raises(ValueError, match="no per-mode system for 'directpred'"):
        ex.set(method="directpred")


def test_the_widgets_drive_the_explorer():
    pytest.importorskip("ipywidgets")
    from dynamics.explore import explore

    box = explore("simsiam", modes=1, exponent=0.0, t_max=300.0)
    wd = box.children[1].children[0]
    wd.value = 0.1  # as a user moving the slider
    assert box.explorer.values["wd"] == pytest.approx(0.1)
    assert box.explorer.ax_time.get_lines()[0].get_ydata()[-1] == pytest.approx(_p_plus(0.1) ** 2, rel=1e-6)
