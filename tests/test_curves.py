"""Training curves: the trailing mean drawn over long, noisy per-step series."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from panoseek.training.curves import SMOOTH_FROM, plot_panels, trailing_mean  # noqa: E402


def test_trailing_mean_by_hand():
    assert trailing_mean([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert trailing_mean([2.0, 4.0, 6.0], 5) == [2.0, 3.0, 4.0]  # fewer values than the window at the start
    assert trailing_mean([], 3) == []
    assert trailing_mean([1.0, float("nan"), 3.0, 5.0], 2) == [1.0, 1.0, 3.0, 4.0]  # a NaN spoils no window


def test_long_series_get_a_trailing_mean_short_ones_do_not(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    drawn = {}
    close = plt.close

    def keep(figure):  # read the lines before the figure is closed
        drawn.update({ax.get_title(): [line.get_label() for line in ax.lines] for ax in figure.axes})
        close(figure)

    monkeypatch.setattr(plt, "close", keep)
    history = [{"step": s, "reward": s % 3, "loss": 1.0} for s in range(1, SMOOTH_FROM + 1)]
    history += [{"step": 1, "eval_loss": 0.5}]
    short = [{"step": s, "kl": 0.1} for s in range(1, SMOOTH_FROM)]
    path = plot_panels(history + short, tmp_path, [("reward", "reward"), ("kl", "KL")], "c.png")
    assert path.stat().st_size > 0
    assert drawn["reward"] == ["train", "trailing mean"]
    assert drawn["KL"] == ["train"]
