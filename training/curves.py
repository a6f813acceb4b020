"""Loss curves of a training run as a PNG, redrawn at every checkpoint and at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

CURVES_FILE = "loss.png"


def plot_curves(log_history: list[dict[str, Any]], out_dir: str | Path) -> Path:
    """Draw training loss (and eval loss, if logged) against the step into ``out_dir/loss.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    for points, label, style in ((train, "train loss", "-"), (evaluation, "val loss", "o-")):
        if points:
            steps, values = zip(*points)
            axes.plot(steps, values, style, label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("loss (last reply tokens)")
    axes.grid(alpha=0.3)
    if train or evaluation:
        axes.legend()
    figure.tight_layout()
    path = Path(out_dir) / CURVES_FILE
    figure.savefig(path)
    plt.close(figure)
    return path


class CurvesCallback(TrainerCallback):
    """Redraws the curves when a checkpoint is saved and when training ends (main process only)."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            plot_curves(state.log_history, self.out_dir)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            plot_curves(state.log_history, self.out_dir)
