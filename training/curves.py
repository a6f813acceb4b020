"""Curves of a training run as PNGs, redrawn at every checkpoint and at the end.

:func:`plot_curves` is SFT's loss (train and val); :func:`plot_panels` draws one panel per
logged metric (DPO's loss, reward margin and preference accuracy; GRPO's reward, success,
format rate, KL, reply length and turns).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

from transformers import TrainerCallback

CURVES_FILE = "loss.png"


def loss_series(log_history: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """SFT's curves by legend label, the ones logged: the replies' train loss (``reply_loss``
    when the target-map loss adds to ``loss``), the val loss, and the target-map losses."""
    def series(key: str) -> list[tuple[int, float]]:
        return [(entry["step"], entry[key]) for entry in log_history if key in entry]

    curves = {"train loss": series("reply_loss") or series("loss"), "val loss": series("eval_loss"),
              "train target-map loss": series("target_loss"), "val target-map loss": series("eval_target_loss")}
    return {label: points for label, points in curves.items() if points}


def plot_curves(log_history: list[dict[str, Any]], out_dir: str | Path) -> Path:
    """Draw the :func:`loss_series` against the step into ``out_dir/loss.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    styles = {"val loss": "o-", "val target-map loss": "s--"}
    for label, points in loss_series(log_history).items():
        steps, values = zip(*points)
        axes.plot(steps, values, styles.get(label, "-"), label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("loss (last reply tokens; target map)")
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend()
    figure.tight_layout()
    path = Path(out_dir) / CURVES_FILE
    figure.savefig(path)
    plt.close(figure)
    return path


SMOOTH_FROM = 20  # a train series this long also gets its trailing mean (per-step RL figures are noisy)


def trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of each value and the ``window - 1`` before it (fewer at the start), over the
    finite ones (a NaN step spoils no window; a window of none is NaN)."""
    means = []
    for index in range(len(values)):
        finite = [v for v in values[max(0, index - window + 1): index + 1] if math.isfinite(v)]
        means.append(sum(finite) / len(finite) if finite else math.nan)
    return means


def plot_panels(log_history: Sequence[dict[str, Any]], out_dir: str | Path, panels: Sequence[tuple[str, str]],
                file: str, *, columns: int | None = None, missing: dict[str, str] | None = None) -> Path:
    """One panel per ``(key, label)`` against the step (train points as a line, with their
    trailing mean from ``SMOOTH_FROM`` points on; ``eval_<key>`` points as dots) into
    ``out_dir/file``, ``columns`` panels a row (default: one row). A panel with no points
    says so (``missing[key]``, default "not logged")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = columns or len(panels)
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.7 * columns, 2.9 * rows), dpi=100, squeeze=False)
    for ax, (key, label) in zip(axes.flat, panels):
        for name, style, legend in ((key, ".-", "train"), (f"eval_{key}", "o-", "val")):
            points = [(entry["step"], entry[name]) for entry in log_history if entry.get(name) is not None]
            if points:
                steps, values = zip(*points)
                smooth = name == key and len(points) >= SMOOTH_FROM
                ax.plot(steps, values, style, label=legend, alpha=0.45 if smooth else 1.0)
                if smooth:
                    ax.plot(steps, trailing_mean(values, max(5, len(points) // 10)), "-", color="C3", label="trailing mean")
        if not ax.lines:
            ax.text(0.5, 0.5, (missing or {}).get(key, "not logged"), ha="center", va="center", transform=ax.transAxes)
        elif any(line.get_label() in ("val", "trailing mean") for line in ax.lines):
            ax.legend()
        ax.set_xlabel("step")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    figure.tight_layout()
    path = Path(out_dir) / file
    figure.savefig(path)
    plt.close(figure)
    return path


class CurvesCallback(TrainerCallback):
    """Redraws the curves when a checkpoint is saved and when training ends (main process only);
    ``plot(log_history, out_dir)`` draws them (default :func:`plot_curves`)."""

    def __init__(self, out_dir: str | Path, plot: Callable[[list, Path], Path] = plot_curves) -> None:
        self.out_dir = Path(out_dir)
        self.plot = plot

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.plot(state.log_history, self.out_dir)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.plot(state.log_history, self.out_dir)
