"""Training curves: the trailing mean drawn over long, noisy per-step series."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from panoseek.training.curves import SMOOTH_FROM, loss_series, plot_curves, plot_panels, trailing_mean  # noqa: E402


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


def test_sft_curves_plot_the_replies_loss_beside_the_target_map(tmp_path):
    history = [{"step": 1, "loss": 4.0, "reply_loss": 0.5, "target_loss": 3.5},
               {"step": 2, "eval_loss": 0.6, "eval_target_loss": 3.2}, {"step": 2, "loss": 3.0, "reply_loss": 0.4,
                                                                        "target_loss": 2.6}]
    assert loss_series(history) == {"train loss": [(1, 0.5), (2, 0.4)], "val loss": [(2, 0.6)],
                                    "train target-map loss": [(1, 3.5), (2, 2.6)], "val target-map loss": [(2, 3.2)]}
    plain = [{"step": 1, "loss": 2.0}, {"step": 1, "eval_loss": 2.5}]
    assert loss_series(plain) == {"train loss": [(1, 2.0)], "val loss": [(1, 2.5)]}
    assert plot_curves(history, tmp_path).stat().st_size > 0
