"""``panoseek train recipe tiny``: a tiny searcher trained from scratch on the CPU, one command.

Five stages, each its own resumable folder under ``--out``, so a rerun after Ctrl-C or
kill -9 continues the stage it was in and skips the finished ones:

1. ``model/``      a random tiny model (``build_tiny_model``, size M) with an image budget
                   of 36 merged tokens per view (448x252 views reach it as 224x112, 32 tokens);
2. ``data-train/`` expert episodes on ``synth:train`` (``build_expert_data``), compact chat,
                   answer-only replies (``no_think``), the last two views as images;
3. ``data-val/``   the same on ``synth:val``, for the validation loss;
4. ``sft/``        SFT with TRL (``train_sft``) from the random model, batches grouped by length;
5. ``sft2/``       a second SFT pass from ``sft/final`` at a lower learning rate (a fresh
                   schedule); ``sft2/final/`` is the model ``panoseek eval --agent vlm`` loads.

Why these choices (docs/training.md has the measurements): the rules prompt is most of a
row's tokens and a model trained from scratch learns the protocol from the episodes, so
the compact chat; answer-only replies are a tenth of a thinking reply's tokens; grouping
rows by length cuts the padded tokens about 3x on this data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from panoseek.training.sft import SFTOptions

MODEL_DIR, TRAIN_DIR, VAL_DIR, SFT_DIR, SFT2_DIR = "model", "data-train", "data-val", "sft", "sft2"
RUN_FILE = "recipe_run.json"
ADDED_SETTINGS = {"target_loss": 0.0}  # settings added after recipe runs existed: their value then


@dataclass(frozen=True)
class TinyRecipe:
    """The settings of the tiny-searcher recipe (the defaults are the documented run)."""

    size: str = "M"
    max_pixels: int = 28 * 28 * 36
    train_episodes: int = 1200
    val_episodes: int = 160
    prompt_format: str = "no_think"
    history: int = 2
    view_size: tuple[int, int] = (448, 252)
    max_steps: int = 700
    save_steps: int = 100
    lr: float = 1e-3
    second_steps: int = 600  # the second pass (0: none; the model is then sft/final)
    second_lr: float = 3e-4
    batch_size: int = 16
    length_bucket: int = 64
    target_loss: float = 0.0  # weight of SFT's target-map loss in both passes (training/target_map.py)
    seed: int = 0

    def check(self) -> None:
        """Refuse bad settings before any stage runs (one clear error naming the option)."""
        for name in ("train_episodes", "val_episodes", "max_steps", "save_steps", "batch_size", "length_bucket"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if isinstance(self.second_steps, bool) or not isinstance(self.second_steps, int) or self.second_steps < 0:
            raise ValueError(f"--second-steps must be 0 or a positive integer, got {self.second_steps!r}")
        self.sft_options().check()

    def sft_options(self, second: bool = False) -> SFTOptions:
        return SFTOptions(
            max_steps=self.second_steps if second else self.max_steps, save_steps=self.save_steps,
            lr=self.second_lr if second else self.lr, seed=self.seed, batch_size=self.batch_size,
            length_bucket=self.length_bucket, target_loss=self.target_loss,
        )

    def final_model(self, out: Path) -> Path:
        """The folder of the recipe's trained model."""
        return out / (SFT2_DIR if self.second_steps else SFT_DIR) / "final"

    def eval_command(self, out: Path, suite: str = "synth:val") -> str:
        """The ``panoseek eval`` command that scores the trained model with the chat it learnt."""
        return (f"panoseek eval --agent vlm --model {self.final_model(out)} --suite {suite} "
                f"--out results/tiny-searcher-{suite.replace(':', '-')} --agent-arg chat=compact "
                f"--agent-arg prompt_format={self.prompt_format} --agent-arg history={self.history} "
                "--agent-arg max_new_tokens=24 --batch-size 16")


def _claim(out: Path, recipe: TinyRecipe) -> None:
    """Make ``out`` this recipe's folder, or refuse it: a folder of another run or of anything
    else is left untouched (the identity is every setting, written before the first stage)."""
    from dataclasses import asdict

    from panoseek.envs.eval.records import config_mismatch, read_json, write_json

    config = {"recipe": "tiny", **{key: list(v) if isinstance(v, tuple) else v for key, v in asdict(recipe).items()}}
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a folder")
    if (out / RUN_FILE).is_file():
        mismatch = config_mismatch({**ADDED_SETTINGS, **read_json(out / RUN_FILE)}, config, config.keys())
        if mismatch:
            raise ValueError(f"--out {str(out)!r} holds a recipe run with other settings ({'; '.join(mismatch)}); "
                             "give a new folder (nothing there was changed)")
    elif out.is_dir() and any(out.iterdir()):
        raise ValueError(f"--out {str(out)!r} is not empty and holds no recipe run ({RUN_FILE}); give a new folder "
                         "(nothing there was changed)")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RUN_FILE, config)


def _model_ready(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()


def run_tiny_recipe(
    out_dir: str | Path, recipe: TinyRecipe = TinyRecipe(), *, progress: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) every stage of ``recipe`` into ``out_dir``; returns the SFT summary
    with each stage's seconds in this session under ``"stage_seconds"``."""
    from panoseek.agents.tiny_model import build_tiny_model
    from panoseek.scenes import load_suite
    from panoseek.training.expert_data import build_expert_data
    from panoseek.training.sft import train_sft

    recipe.check()
    out = Path(out_dir)
    _claim(out, recipe)
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    if not _model_ready(out / MODEL_DIR):
        say(f"[1/5] tiny model {recipe.size} -> {out / MODEL_DIR}")
        # force: a model/ cut short by an interruption holds only the tiny model's own files
        build_tiny_model(out / MODEL_DIR, size=recipe.size, seed=recipe.seed, force=True, max_pixels=recipe.max_pixels)
    seconds["model"] = time.perf_counter() - tick
    for stage, (folder, suite, episodes) in enumerate(
        ((TRAIN_DIR, "synth:train", recipe.train_episodes), (VAL_DIR, "synth:val", recipe.val_episodes)), start=2
    ):
        tick = time.perf_counter()
        say(f"[{stage}/5] expert data: {episodes} episodes of {suite} -> {out / folder}")
        counts = build_expert_data(
            load_suite(suite), out / folder, limit=episodes, prompt_format=recipe.prompt_format, chat="compact",
            history=recipe.history, view_size=recipe.view_size, seed=recipe.seed, progress=progress,
        )
        say(f"      {counts['episodes']} episodes, {counts['new']} new ({counts['rows']} new rows)")
        seconds[folder] = time.perf_counter() - tick
    passes = [(MODEL_DIR, SFT_DIR, False)] + ([(f"{SFT_DIR}/final", SFT2_DIR, True)] if recipe.second_steps else [])
    for stage, (base, folder, second) in enumerate(passes, start=4):
        options = recipe.sft_options(second)
        tick = time.perf_counter()
        say(f"[{stage}/5] SFT: {options.max_steps} steps of {options.batch_size} rows at lr {options.lr:g} "
            f"-> {out / folder}")
        summary = train_sft(out / base, out / TRAIN_DIR, out / folder, options, eval_dir=out / VAL_DIR,
                            progress=progress)
        seconds[folder] = time.perf_counter() - tick
        if not summary["finished"]:
            break
    return {**summary, "stage_seconds": seconds}
