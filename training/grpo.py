"""Multi-turn GRPO of an image-text-to-text model on the search episodes, with TRL's ``GRPOTrainer``.

``train_grpo(model_dir, out_dir, GRPOOptions(...))`` trains any local model the ``vlm``
agent loads. Each step plays ``batch`` episodes through the one episode loop
(:mod:`panoseek.training.trajectories`): ``batch / group`` starts, ``group`` episodes
each, sampled at ``temperature``. The reward is the episode's (:data:`REWARDS`; ``hstar``
is the environment's own 0.5 success + 0.5 format), normalised within each group into
the trajectory's advantage. The chat keeps a window of ``history`` views, so a trajectory
is trained as its per-turn sequences: prompt = exactly the chat the model saw at that
turn (same rendering, same images), completion = the reply it sampled, the loss on the
reply tokens (and the ``<|im_end|>`` closing them) only, every turn carrying its
trajectory's advantage. For a windowed history this is the exact policy gradient. With
``turns_left`` every user turn ends with the turns left of the ``max_turns`` budget (the
``vlm`` agent's ``turns_left=true``, which is how to evaluate such a model).

What :class:`EpisodeGRPOTrainer` changes in TRL 1.16's ``GRPOTrainer``:

* ``_generate_and_score_completions``: episodes instead of single completions; every
  view's pixels and the processor's per-token fields go to the loss forward;
* ``_prepare_inputs``: splits a step's per-turn rows into ``micro_batches`` without
  dropping any (their number varies with the episodes' lengths);
* the log-probs of the loss forward come from :func:`panoseek.kernels.token_logprobs`
  (:func:`use_kernel_lm_head`, in place of TRL's ``add_fused_lm_head``).

The loss is TRL's (``dapo``: clipped ratio, token-level mean over the step's reply tokens
= the mean over the assistant tokens of all trajectories) plus ``beta`` times TRL's KL
to the starting model.

The output folder holds one run: ``grpo_run.json`` (checked before resuming),
``checkpoint-N/`` every ``save_steps`` (the last two kept), ``progress.jsonl`` (one row
per step), ``curves.png``, and at the end ``final/`` and ``grpo_summary.json``. A rerun
of the same command resumes from the latest checkpoint. CPU runs use fp32 without
gradient checkpointing. Multi-GPU: ``accelerate launch -m panoseek train grpo ...``.
"""

from __future__ import annotations

import functools
import json
import math
import time
import types
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from panoseek.agents.chat import STRUCTURES
from panoseek.envs.eval.records import read_json, write_json
from panoseek.envs.protocol import PROMPT_FORMATS
from panoseek.envs.rollout import EpisodeSettings, EpisodeSpec, episode_id, episode_seed
from panoseek.training import sft
from panoseek.training.trajectories import RecordingPolicy, Trajectory, play_trajectories

RUN_FILE = "grpo_run.json"
SUMMARY_FILE = "grpo_summary.json"
PROGRESS_FILE = "progress.jsonl"
CURVES_FILE = "curves.png"
FINAL_DIR = "final"
_ADDED_OPTIONS = {"turns_left": False}  # options added after runs existed: their value then


class GRPOError(ValueError):
    """A model folder, output folder, option or reward that cannot be used; the message names it."""


def hstar_reward(record: dict[str, Any]) -> float:
    """The environment's reward as ``panoseek eval`` records it: 0.5 success + 0.5 well-formed submission."""
    return float(record["reward"])


def success_reward(record: dict[str, Any]) -> float:
    """1 for a successful episode, else 0."""
    return float(record["success"])


REWARDS: dict[str, Callable[[dict[str, Any]], float]] = {"hstar": hstar_reward, "success": success_reward}


class EpisodeReward:
    """A TRL reward function over played episodes: ``reward(records=[...])`` is one finite number per record."""

    def __init__(self, name: str) -> None:
        if name not in REWARDS:
            raise GRPOError(f"--reward must be one of {sorted(REWARDS)}, got {name!r}")
        self.__name__, self.function = name, REWARDS[name]

    def __call__(self, prompts=None, completions=None, *, records: Sequence[dict[str, Any]], **kwargs) -> list[float]:
        values = []
        for record in records:
            value = self.function(record)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise GRPOError(f"reward {self.__name__!r} of episode {record['episode_id']} is {value!r}, "
                                "not a finite number")
            values.append(float(value))
        return values


def well_formed_submission(record: dict[str, Any]) -> bool:
    """Whether the episode ended with a well-formed submission (what earns the format reward)."""
    actions = record["actions"]
    return record["submitted"] is not None and bool(actions) and bool(actions[-1]["well_formed"])


@dataclass(frozen=True)
class GRPOOptions:
    """One run's settings (all part of its identity)."""

    suite: str = "synth:train"
    tasks: int = 64  # the first N tasks of the suite are trained on (a step picks one start of each)
    batch: int = 16  # episodes per optimizer step
    group: int = 8  # episodes per start; advantages are normalised within a group
    micro_batches: int = 1  # the step's per-turn rows are split into this many forward/backward passes
    max_turns: int = 5
    history: int = 2  # views kept as images in the chat
    temperature: float = 0.7
    max_new_tokens: int = 256
    beta: float = 0.0  # KL coefficient (TRL's k3 estimator against the starting model)
    epsilon: float = 0.2  # PPO clip range
    lr: float = 1e-7
    reward: str = "hstar"
    prompt_format: str = "free_think"
    chat: str | None = None  # the chat structure (VLMAgent's ``chat``): None as eval's default, or "compact", ...
    turns_left: bool = False  # end every user turn with the turns left (VLMAgent's ``turns_left``)
    strict: bool | str = False
    view_size: tuple[int, int] = (448, 252)
    max_steps: int = 100
    save_steps: int = 10
    seed: int = 0

    def check(self) -> None:
        for name in ("tasks", "batch", "group", "micro_batches", "max_turns", "history", "max_new_tokens",
                     "max_steps", "save_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GRPOError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.group < 2:
            raise GRPOError(f"--group must be at least 2 (advantages compare episodes of one start), got {self.group}")
        if self.batch % self.group:
            raise GRPOError(f"--group {self.group} does not divide --batch {self.batch}: a step plays whole groups "
                            "(batch = starts x group)")
        if self.batch % self.micro_batches:
            raise GRPOError(f"--micro-batches {self.micro_batches} does not divide --batch {self.batch}")
        for name in ("temperature", "lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise GRPOError(f"--{name} must be a positive number, got {value!r}")
        for name in ("beta", "epsilon"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise GRPOError(f"--{name} must be a non-negative number, got {value!r}")
        if self.reward not in REWARDS:
            raise GRPOError(f"--reward must be one of {sorted(REWARDS)}, got {self.reward!r}")
        if self.chat is not None and self.chat not in STRUCTURES:
            raise GRPOError(f"--chat must be one of {STRUCTURES}, got {self.chat!r}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise GRPOError(f"--prompt-format must be one of {PROMPT_FORMATS}, got {self.prompt_format!r}")
        if not isinstance(self.turns_left, bool):
            raise GRPOError(f"--turns-left must be True or False, got {self.turns_left!r}")
        if self.turns_left and (self.chat == "hstar" or (self.chat is None and self.strict == "hstar")):
            raise GRPOError("--turns-left is not for the hstar chat (H*'s prompts are fixed; it is the default chat "
                            "under strict='hstar'): give --chat panoseek or --chat compact")


# H* Bench's GRPO recipe (verl): group 8, 5 turns, window 2, lr 1e-7, temperature 0.7,
# reward 0.5 success + 0.5 format. Its KL coefficient is not stated; beta stays 0.
PRESETS: dict[str, dict[str, Any]] = {
    "hstar": {"group": 8, "max_turns": 5, "history": 2, "lr": 1e-7, "temperature": 0.7, "reward": "hstar"},
}


def preset(name: str, **overrides: Any) -> GRPOOptions:
    """The options of preset ``name`` with ``overrides`` on top."""
    if name not in PRESETS:
        raise GRPOError(f"unknown GRPO preset {name!r}; expected one of {sorted(PRESETS)}")
    return replace(GRPOOptions(**PRESETS[name]), **overrides)


# ------------------------------------------------------------------- the loss forward


def use_kernel_lm_head(model: Any, temperature: float) -> None:
    """Make ``model(..., labels=L, fused_lm_head=True)`` score ``L`` through :func:`panoseek.kernels.token_logprobs`.

    TRL 1.16 calls its models this way in ``_get_per_token_logps_and_entropies`` after
    patching the same entry point with its own chunked head (``add_fused_lm_head``); this
    replaces that head and keeps TRL's input handling. Only positions with a label other
    than -100 are projected (the reply tokens: a few percent of a multi-turn prompt), at
    ``logits / temperature`` as the model sampled them.
    """
    from trl.trainer.utils import FusedCausalLMOutput

    from panoseek.kernels import token_logprobs

    fallback = model.forward  # TRL's patched forward: the original one unless fused_lm_head=True

    @functools.wraps(type(model).forward)
    def forward(self, *args, fused_lm_head: bool = False, labels=None, **kwargs):
        if not fused_lm_head:
            return fallback(*args, labels=labels, **kwargs)
        kwargs.pop("num_items_in_batch", None)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        targets = labels[:, 1:].to(hidden.device)
        head = self.get_output_embeddings()
        if getattr(head, "bias", None) is not None:
            raise GRPOError("the model's lm_head has a bias, which panoseek.kernels.token_logprobs does not take")
        mask = targets != -100
        logprob, entropy = token_logprobs(hidden[mask] / temperature, head.weight, targets[mask], return_entropy=True)
        log_probs = hidden.new_zeros(mask.shape, dtype=logprob.dtype).masked_scatter(mask, logprob)
        entropies = hidden.new_zeros(mask.shape, dtype=entropy.dtype).masked_scatter(mask, entropy)
        loss = -log_probs.sum() / mask.sum().clamp(min=1)
        return FusedCausalLMOutput(loss=loss, log_probs=log_probs, entropy=entropies, label_mask=mask)

    model.forward = types.MethodType(forward, model)


# ------------------------------------------------------------------------ the trainer


def _trainer_class():
    """:class:`EpisodeGRPOTrainer`, defined on first use (importing TRL is slow)."""
    import torch
    from trl import GRPOTrainer
    from trl.models.utils import unwrap_model_for_generation
    from trl.trainer.utils import (
        RepeatSampler, nanstd, pad, shuffle_sequence_dict, split_pixel_values_by_grid, unsplit_pixel_values_by_grid,
    )

    from panoseek.envs.eval.runner import make_env

    class EpochSampler(RepeatSampler):
        """TRL's sampler with each epoch's order drawn from ``seed + epoch``, so a resumed run sees the
        order an uninterrupted one would (TRL's draws it from one generator that a restart resets)."""

        def set_epoch(self, epoch: int) -> None:
            self.generator.manual_seed(self.seed + epoch)

    class EpisodeGRPOTrainer(GRPOTrainer):
        """``GRPOTrainer`` whose completions are whole episodes played by the engine (see the module docstring)."""

        def __init__(self, *, tasks: Sequence[Any], options: GRPOOptions, **kwargs: Any) -> None:
            super().__init__(reward_funcs=[EpisodeReward(options.reward)], **kwargs)
            self.options, self.tasks = options, tasks
            self.settings = EpisodeSettings(view_size=tuple(options.view_size), max_turns=options.max_turns,
                                            seed=options.seed, strict=options.strict)
            local_batch = self.args.per_device_train_batch_size * self.args.steps_per_generation
            self.envs = [make_env(tasks, self.settings) for _ in range(local_batch)]
            use_kernel_lm_head(self.model, self.temperature)
            if self.ref_model is not None:
                use_kernel_lm_head(self.ref_model, self.temperature)

        def _get_train_sampler(self, dataset=None):
            return EpochSampler(
                data_source=self.train_dataset if dataset is None else dataset, mini_repeat_count=self.num_generations,
                batch_size=self.args.generation_batch_size // self.num_generations,
                repeat_count=self.num_iterations * self.args.steps_per_generation, shuffle=True, seed=self.args.seed,
            )

        # ---------------------------------------------------------- episodes -> rows

        def _episode_specs(self, inputs: Sequence[dict[str, Any]]) -> list[EpisodeSpec]:
            """One spec per row; the G rows of a group share a start (chosen from the step and the task)."""
            group, step = self.num_generations, self.state.global_step
            specs = []
            for index, row in enumerate(inputs):
                first = inputs[index - index % group]
                if row["task_index"] != first["task_index"]:
                    raise RuntimeError(f"rows {index - index % group}..{index} of a generation batch are not one group")
                task = self.tasks[row["task_index"]]
                start = episode_seed(self.options.seed, f"{task.id}@{step}") % task.n_starts
                name = episode_id(task.id, start)
                seed = episode_seed(self.options.seed, f"{name}@{step}/{self.accelerator.process_index}/{index}")
                specs.append(EpisodeSpec(row["task_index"], start, name, seed))
            return specs

        def _play(self, specs: list[EpisodeSpec]) -> list[Trajectory]:
            with unwrap_model_for_generation(
                self.model_wrapped, self.accelerator, gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as model, torch.no_grad():
                policy = RecordingPolicy(model, self.processing_class, temperature=self.temperature,
                                         max_new_tokens=self.options.max_new_tokens)
                return play_trajectories(policy, self.envs[: len(specs)], specs, history=self.options.history,
                                         prompt_format=self.options.prompt_format, chat=self.options.chat,
                                         turns_left=self.options.turns_left, strict=self.options.strict)

        def _rewards(self, trajectories: Sequence[Trajectory]) -> torch.Tensor:
            values = self.reward_funcs[0](records=[trajectory.record for trajectory in trajectories])
            return torch.tensor(values, dtype=torch.float32, device=self.accelerator.device)

        def reply_logprobs(self, model: Any, batch: dict[str, Any], **kwargs: Any) -> torch.Tensor:
            """Per-token log-probs of ``batch``'s completions under ``model``, as the loss computes them
            (TRL's ``_get_per_token_logps_and_entropies`` through the kernel head); 0 on padding."""
            logprobs, _, _ = self._get_per_token_logps_and_entropies(
                model, torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1),
                torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1), batch["completion_ids"].size(1),
                **{key: batch[key] for key in _FORWARD_KEYS if key in batch}, **kwargs,
            )
            return logprobs

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            mode = "train" if self.model.training else "eval"
            trajectories = self._play(self._episode_specs(inputs))

            # Group-normalised advantages over all processes' episodes (a group may span processes).
            rewards = self.accelerator.gather(self._rewards(trajectories))
            grouped = rewards.view(-1, self.num_generations)
            std = nanstd(grouped, dim=1).repeat_interleave(self.num_generations)
            advantages = (rewards - grouped.mean(dim=1).repeat_interleave(self.num_generations)) / (std + 1e-4)
            local = slice(self.accelerator.process_index * len(inputs), (self.accelerator.process_index + 1) * len(inputs))
            advantages = advantages[local]

            output = self._rows(trajectories, advantages)
            if self.beta != 0.0:
                with torch.no_grad():
                    output["ref_per_token_logps"] = self.reply_logprobs(
                        self.ref_model, output, batch_size=self.args.per_device_train_batch_size)
            self._log_episodes(mode, trajectories, rewards, std, output["completion_mask"])
            return output

        def _rows(self, trajectories: Sequence[Trajectory], advantages: torch.Tensor) -> dict[str, Any]:
            """The per-turn rows of ``trajectories`` in TRL's batch layout: prompts left-padded, replies
            right-padded (``completion_mask`` marks the tokens the model wrote), every turn's views as pixel
            inputs, each row carrying its trajectory's advantage."""
            device = self.accelerator.device
            rows = [(turn, advantages[i]) for i, trajectory in enumerate(trajectories) for turn in trajectory.turns]
            tokenizer = self.processing_class.tokenizer
            prompt_ids = pad([torch.tensor(t.prompt_ids) for t, _ in rows], padding_value=tokenizer.pad_token_id,
                             padding_side="left").to(device)
            prompt_mask = pad([torch.ones(len(t.prompt_ids), dtype=torch.long) for t, _ in rows], padding_value=0,
                              padding_side="left").to(device)
            completion_ids = pad([torch.tensor(t.completion_ids) for t, _ in rows],
                                 padding_value=tokenizer.pad_token_id, padding_side="right").to(device)
            completion_mask = pad([torch.ones(len(t.completion_ids), dtype=torch.long) for t, _ in rows],
                                  padding_value=0, padding_side="right").to(device)
            images = [image for turn, _ in rows for image in turn.images]
            pixels = self.processing_class.image_processor(images=images, return_tensors="pt")
            output: dict[str, Any] = {
                "prompt_ids": prompt_ids, "prompt_mask": prompt_mask,
                "completion_ids": completion_ids, "completion_mask": completion_mask,
                "advantages": torch.stack([a for _, a in rows]),
                "num_items_in_batch": self.accelerator.gather(completion_mask.sum()).sum(),
                "num_images": [len(turn.images) for turn, _ in rows],
                **{key: value.to(device) for key, value in pixels.items()},
            }
            # The processor's per-token fields (Qwen2.5-VL: mm_token_type_ids), over prompt and completion.
            for key in rows[0][0].token_fields:
                prompt_part = pad([torch.tensor(t.token_fields[key]) for t, _ in rows], padding_value=0,
                                  padding_side="left")
                output[key] = torch.cat([prompt_part, torch.zeros_like(completion_ids.cpu())], dim=1).to(device)

            return output

        def _log_episodes(self, mode, trajectories, rewards, std, completion_mask) -> None:
            """Step metrics over all processes' episodes: reward, success, format rate, turns, reply length."""
            records = [trajectory.record for trajectory in trajectories]

            def mean(values: Sequence[float]) -> float:  # processes may hold different numbers of values
                total = torch.tensor([sum(values), len(values)], dtype=torch.float64, device=self.accelerator.device)
                total = self.accelerator.gather(total).view(-1, 2).sum(0)
                return (total[0] / total[1].clamp(min=1)).item()

            metrics = self._metrics[mode]
            metrics["reward"].append(rewards.mean().item())
            metrics["reward_std"].append(rewards.std().item() if rewards.numel() > 1 else 0.0)
            metrics["frac_reward_zero_std"].append(torch.isclose(std, torch.zeros_like(std)).float().mean().item())
            metrics["success"].append(mean([float(r["success"]) for r in records]))
            metrics["format_rate"].append(mean([float(well_formed_submission(r)) for r in records]))
            metrics["turns"].append(mean([float(r["turns"]) for r in records]))
            metrics["reply_tokens"].append(mean(completion_mask.sum(1).float().tolist()))

        # ------------------------------------------------------ rows -> micro-batches

        def _prepare_inputs(self, generation_batch):
            """TRL's, with the step's rows split into ``steps_per_generation`` parts without dropping any."""
            if not self.model.training:
                return self._generate_and_score_completions(generation_batch)
            parts = self.args.steps_per_generation
            if self._step % parts == 0 or self._buffered_inputs is None:
                batch = shuffle_sequence_dict(split_pixel_values_by_grid(self._generate_and_score_completions(generation_batch)))
                count = len(batch["advantages"])
                if count < parts:
                    raise GRPOError(f"a step played {count} turns in all, fewer than --micro-batches {parts}")
                bounds = [round(i * count / parts) for i in range(parts + 1)]
                self._buffered_inputs = [
                    unsplit_pixel_values_by_grid({key: value if _is_scalar(value) else value[lo:hi]
                                                  for key, value in batch.items()})
                    for lo, hi in zip(bounds, bounds[1:])
                ]
            return self._buffered_inputs[self._step % parts]

    return EpisodeGRPOTrainer


_FORWARD_KEYS = ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "image_sizes",
                 "token_type_ids", "mm_token_type_ids")


def _is_scalar(value: Any) -> bool:
    return value is None or (hasattr(value, "ndim") and value.ndim == 0)


# --------------------------------------------------------------------------- the run


def load_model(model_dir: str | Path, checkpoint: str | None = None):
    """``(model, processor)`` as :func:`panoseek.training.sft.load_model` loads them for training.

    With ``checkpoint`` the weights come from it, while the model keeps the base folder as its
    name (TRL builds the KL reference model from that name: the starting model, not the checkpoint).
    """
    try:
        model, processor = sft.load_model(model_dir, trainer="GRPO")
    except sft.SFTError as error:
        raise GRPOError(str(error)) from None
    if checkpoint is not None:
        from transformers import AutoModelForImageTextToText

        trained = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype="float32", local_files_only=True)
        model.load_state_dict(trained.state_dict())
    return model, processor


def check_out_dir(out: Path, config: dict[str, Any]) -> None:
    """Refuse an output folder that holds anything but this same run (SFT's check, GRPO's run file;
    a run file without an option of ``_ADDED_OPTIONS`` is from before it existed, when it had that value)."""
    try:
        sft.check_out_dir(out, config, RUN_FILE, "GRPO", added=_ADDED_OPTIONS)
    except sft.SFTError as error:
        raise GRPOError(str(error)) from None


def start_rows(tasks: Sequence[Any]):
    """The training dataset: one row per task (a step picks the start each group plays)."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": task.instruction, "task_index": index} for index, task in enumerate(tasks)])


CURVE_PANELS = (
    ("reward", "reward"), ("success", "success rate"), ("format_rate", "format rate"),
    ("kl", "KL to start"), ("reply_tokens", "reply tokens"), ("turns", "turns"),
)


def plot_grpo_curves(log_history: Sequence[dict[str, Any]], out_dir: str | Path) -> Path:
    """Reward, success, format rate, KL, reply length and turns per step, into ``out_dir/curves.png``."""
    from panoseek.training.curves import plot_panels

    return plot_panels(log_history, out_dir, CURVE_PANELS, CURVES_FILE, columns=3, missing={"kl": "beta = 0"})


def _callbacks(out: Path):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """Writes the log rows to ``progress.jsonl`` at each log, and the curves at each checkpoint and at the end."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero:
                rows = [entry for entry in state.log_history if "reward" in entry]
                (out / PROGRESS_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                plot_grpo_curves(state.log_history, out)

        on_train_end = on_save

    return [Progress()]


def _identity(model_dir: str | Path, options: GRPOOptions) -> dict[str, Any]:
    """What makes a run this run (besides the suite's fingerprint), as ``grpo_run.json`` records it."""
    return {"model": str(Path(model_dir).resolve()), **asdict(options), "view_size": list(options.view_size)}


def make_trainer(model_dir: str | Path, out_dir: str | Path, options: GRPOOptions, *, progress: bool = True,
                 callbacks: Sequence[Any] = ()):
    """The trainer of one run and the checkpoint to resume from (None for a new run); writes ``grpo_run.json``."""
    import torch
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOConfig

    from panoseek.scenes import SuiteError, load_suite

    options.check()
    model_dir, out = Path(model_dir).resolve(), Path(out_dir)
    try:
        suite = load_suite(options.suite)
    except SuiteError as error:
        raise GRPOError(str(error)) from None
    config = {**_identity(model_dir, options), "suite_fingerprint": suite.fingerprint}
    check_out_dir(out, config)
    tasks = suite[: options.tasks]
    if len(tasks) * options.group < options.batch:
        raise GRPOError(f"--tasks {len(tasks)} give {len(tasks)} starts per step, fewer than --batch / --group = "
                        f"{options.batch // options.group}")
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    model, processor = load_model(model_dir, last)
    try:
        RecordingPolicy(model, processor)  # the tokenizer closes replies as the chat template does
    except ValueError as error:
        raise GRPOError(f"model folder {str(model_dir)!r}: {error}") from None
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RUN_FILE, config)

    cpu = not torch.cuda.is_available()
    args = GRPOConfig(
        output_dir=str(out), max_steps=options.max_steps, save_steps=options.save_steps, save_strategy="steps",
        save_total_limit=2, logging_steps=1, learning_rate=options.lr, seed=options.seed, data_seed=options.seed,
        per_device_train_batch_size=options.batch // options.micro_batches,
        gradient_accumulation_steps=options.micro_batches, steps_per_generation=options.micro_batches,
        num_generations=options.group, temperature=options.temperature, beta=options.beta,
        epsilon=options.epsilon, loss_type="dapo", max_completion_length=options.max_new_tokens,
        use_cpu=cpu, bf16=not cpu and torch.cuda.is_bf16_supported(), gradient_checkpointing=not cpu,
        disable_dropout=True, report_to="none", dataloader_num_workers=0, disable_tqdm=not progress,
        remove_unused_columns=False, log_completions=False,
    )
    trainer = _trainer_class()(
        model=model, args=args, train_dataset=start_rows(tasks), processing_class=processor,
        callbacks=[*_callbacks(out), *callbacks], tasks=tasks, options=options,
    )
    return trainer, last


def chat_info(options: GRPOOptions) -> dict[str, Any]:
    """``final/panoseek_grpo.json``: the chat the model was trained in, which is how to evaluate it."""
    return {"prompt_format": options.prompt_format, "history": options.history, "chat": options.chat,
            "turns_left": options.turns_left}


def train_grpo(
    model_dir: str | Path,
    out_dir: str | Path,
    options: GRPOOptions = GRPOOptions(),
    *,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train (or resume) one GRPO run into ``out_dir``; returns its summary (``"finished"``: all steps done)."""
    options.check()
    out = Path(out_dir)
    if (out / SUMMARY_FILE).is_file() and (out / RUN_FILE).is_file():
        fingerprint = read_json(out / RUN_FILE).get("suite_fingerprint")
        check_out_dir(out, {**_identity(model_dir, options), "suite_fingerprint": fingerprint})
        return read_json(out / SUMMARY_FILE)  # this run has finished: nothing to do
    trainer, last = make_trainer(model_dir, out, options, progress=progress, callbacks=callbacks)
    model_dir = Path(model_dir).resolve()
    cpu = trainer.args.use_cpu
    tick = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    state = trainer.state
    rows = [entry for entry in state.log_history if "reward" in entry]
    summary = {
        "finished": state.global_step >= options.max_steps, "step": state.global_step,
        "first_reward": rows[0]["reward"] if rows else None, "last_reward": rows[-1]["reward"] if rows else None,
        "losses": [entry.get("loss") for entry in rows], "seconds_this_session": time.perf_counter() - tick,
        "device": "cpu" if cpu else "cuda",
    }
    if not summary["finished"]:
        return summary
    final = out / FINAL_DIR
    trainer.save_model(str(final))
    sft.copy_processor_files(model_dir, final)
    (final / "panoseek_grpo.json").write_text(json.dumps(chat_info(options), indent=2) + "\n")
    plot_grpo_curves(state.log_history, out)
    write_json(out / SUMMARY_FILE, summary)
    return summary
