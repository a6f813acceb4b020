"""Direct preference optimisation on trajectory preference pairs, with TRL's ``DPOTrainer``.

``train_dpo(model_dir, pairs_dir, out_dir, DPOOptions(...))`` trains any local model that
``AutoModelForImageTextToText`` loads on the pairs of ``panoseek data preferences``
(:mod:`panoseek.training.preferences`): at one history of an expert episode, the expert's
reply is preferred to the model's worse one. TRL's ``DataCollatorForVisionPreference``
renders each pair as prompt (the chat and its views) + chosen / rejected reply, and the
loss is on the reply tokens only (its ``completion_mask``). The reference model is the
starting model, loaded a second time (also when resuming, so it never becomes a checkpoint).

Per-token log-probabilities: TRL patches the model with a fused LM head
(``add_fused_lm_head``: ``model(..., fused_lm_head=True).log_probs``). With
``logprobs="panoseek"`` (the default) :func:`use_token_logprobs` replaces that head on the
policy and the reference model by :func:`panoseek.kernels.token_logprobs` (chunked over
the completion tokens, Triton on CUDA); ``"trl"`` keeps TRL's. Our kernel gives
log-probs and entropies but not TRL's extra statistics (mean logit, top-1 agreement),
so the ``logits/*`` and ``mean_token_accuracy`` metrics are not logged with it.

The output folder holds one run, as SFT's does (:mod:`panoseek.training.sft`):
``dpo_run.json``, ``checkpoint-N/`` (last two kept), ``dpo.png`` (loss, reward margin,
preference accuracy), and at the end ``final/`` and ``dpo_summary.json``; a rerun resumes.
CPU runs use fp32 without gradient checkpointing; GPUs bf16 with checkpointing; multi-GPU
``accelerate launch -m panoseek train dpo ...`` (docs/training.md).
"""

from __future__ import annotations

import json
import math
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from panoseek.envs.eval.records import read_json, write_json
from panoseek.training.expert_data import OLD_DEFAULTS
from panoseek.training.preferences import PREFERENCES_FILE, load_preference_dataset
from panoseek.training.sft import SFTError, check_out_dir, copy_processor_files, load_model, resumed_weights

RUN_FILE = "dpo_run.json"
SUMMARY_FILE = "dpo_summary.json"
FINAL_DIR = "final"
CURVES_FILE = "dpo.png"
PANELS = (("loss", "DPO loss"), ("rewards/margins", "reward margin (chosen - rejected)"),
          ("rewards/accuracies", "preference accuracy"))
LOGPROBS = ("panoseek", "trl")
_UNSUPPORTED_METRICS = ("logits/chosen", "logits/rejected", "mean_token_accuracy")  # need TRL's head


class DPOError(SFTError):
    """A model folder, pairs folder, output folder or option that cannot be used; names it."""


_ADDED_OPTIONS = {"sft_weight": 0.0}  # options added after runs existed: their value then


@dataclass(frozen=True)
class DPOOptions:
    """Hyperparameters of one run (all part of its identity)."""

    max_steps: int = 100
    save_steps: int = 25
    lr: float = 5e-6
    beta: float = 0.1
    seed: int = 0
    batch_size: int = 2
    grad_accum: int = 1
    logprobs: str = "panoseek"  # or "trl": whose per-token log-prob function the loss uses
    sft_weight: float = 0.0  # > 0: plus this weight x the chosen replies' NLL (TRL's "sft" loss, as in RPO)

    def check(self) -> None:
        for name in ("max_steps", "save_steps", "batch_size", "grad_accum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DPOError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("lr", "beta"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise DPOError(f"--{name} must be a positive number, got {value!r}")
        if isinstance(self.sft_weight, bool) or not isinstance(self.sft_weight, (int, float)) \
                or not math.isfinite(self.sft_weight) or self.sft_weight < 0:
            raise DPOError(f"--sft-weight must be a number >= 0, got {self.sft_weight!r}")
        if self.logprobs not in LOGPROBS:
            raise DPOError(f"--logprobs must be one of {LOGPROBS}, got {self.logprobs!r}")


def use_token_logprobs(model: Any) -> None:
    """Make ``model(..., labels=labels, fused_lm_head=True)`` compute TRL's per-token output
    with :func:`panoseek.kernels.token_logprobs` (only the labelled positions are projected).

    Any other call goes to the forward the model had (TRL's head falls through to the
    original one), so generation is unchanged.
    """
    import torch
    from trl.trainer.utils import FusedCausalLMOutput

    from panoseek.kernels import token_logprobs

    previous = model.forward
    if model.get_output_embeddings().bias is not None:
        raise DPOError("the model's LM head has a bias, which panoseek.kernels.token_logprobs does not take; "
                       "use --logprobs trl")

    def forward(self, *args, fused_lm_head=False, labels=None, **kwargs):
        if not fused_lm_head:
            return previous(*args, labels=labels, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        mask = targets != -100
        weight = self.get_output_embeddings().weight
        device = weight.device.type
        # Under autocast (bf16 on GPUs) the head computes in the autocast dtype, as nn.Linear would.
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        logprob, entropy = token_logprobs(hidden[mask].to(weight.device, dtype), weight.to(dtype),
                                          targets[mask].to(weight.device), return_entropy=True)
        log_probs = logprob.new_zeros(mask.shape).masked_scatter(mask, logprob)
        entropies = entropy.new_zeros(mask.shape).masked_scatter(mask, entropy.detach())
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / mask.sum().clamp(min=1), log_probs=log_probs, entropy=entropies,
            mean_logits=torch.zeros_like(entropies), is_top1=torch.zeros_like(mask), label_mask=mask,
        )

    model.forward = types.MethodType(forward, model)


def _trainer_class():
    from trl import DPOTrainer

    class PanoseekDPOTrainer(DPOTrainer):
        """TRL's DPOTrainer, logging only the metrics its log-prob head computes."""

        panoseek_logprobs = True

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if self.panoseek_logprobs:
                for key in _UNSUPPORTED_METRICS:
                    self._metrics["train" if self.model.training else "eval"].pop(key, None)
            super().log(logs, start_time)

    return PanoseekDPOTrainer


def plot_dpo_curves(log_history: list[dict[str, Any]], out_dir: str | Path) -> Path:
    """Loss, reward margin and preference accuracy against the step, into ``out_dir/dpo.png``."""
    from panoseek.training.curves import plot_panels

    return plot_panels(log_history, out_dir, PANELS, CURVES_FILE)


def chat_info(pairs_info: dict[str, Any], pairs_dir: str | Path) -> dict[str, Any]:
    """``final/panoseek_sft.json``: how the pairs' chat was rendered, which is how to evaluate the
    model (pairs folders from before the turns-left note: without it)."""
    info = {**OLD_DEFAULTS, **pairs_info}
    return {"prompt_format": info.get("prompt_format"), "chat": info.get("chat", "panoseek"),
            "history": info.get("history"), "turns_left": info["turns_left"], "short_budgets": info["short_budgets"],
            "dpo_pairs": str(pairs_dir), "expert_data": info.get("expert_data")}


def train_dpo(
    model_dir: str | Path,
    pairs_dir: str | Path,
    out_dir: str | Path,
    options: DPOOptions = DPOOptions(),
    *,
    eval_dir: str | Path | None = None,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train (or resume) one DPO run into ``out_dir``; returns its summary (``"finished"``:
    False when a callback stopped it before ``max_steps``; rerunning resumes it)."""
    import torch
    from transformers.trainer_utils import get_last_checkpoint
    from trl import DPOConfig

    from panoseek.training.curves import CurvesCallback

    options.check()
    model_dir, pairs_dir, out = Path(model_dir).resolve(), Path(pairs_dir).resolve(), Path(out_dir)
    eval_path = None if eval_dir is None else Path(eval_dir).resolve()
    pairs_info = read_json(pairs_dir / PREFERENCES_FILE) if (pairs_dir / PREFERENCES_FILE).is_file() else {}
    config = {"model": str(model_dir), "data": str(pairs_dir), "data_fingerprint": pairs_info.get("fingerprint"),
              "eval_data": None if eval_path is None else str(eval_path), **asdict(options)}
    try:
        check_out_dir(out, config, RUN_FILE, "DPO", added=_ADDED_OPTIONS)
    except SFTError as error:
        raise DPOError(str(error)) from None
    if (out / SUMMARY_FILE).is_file():
        return read_json(out / SUMMARY_FILE)  # this run has finished: nothing to do

    train_set = load_preference_dataset(pairs_dir)
    eval_set = None if eval_path is None else load_preference_dataset(eval_path)
    try:
        model, processor = load_model(model_dir, trainer="DPO")
        reference, _ = load_model(model_dir, trainer="DPO")
    except SFTError as error:
        raise DPOError(str(error)) from None
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RUN_FILE, config)
    last = get_last_checkpoint(str(out))
    if last is not None:
        model = resumed_weights(last)
    cpu = not torch.cuda.is_available()
    args = DPOConfig(
        output_dir=str(out), max_steps=options.max_steps, save_steps=options.save_steps, save_strategy="steps",
        save_total_limit=2, logging_steps=1, learning_rate=options.lr, beta=options.beta, seed=options.seed,
        data_seed=options.seed, per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size, gradient_accumulation_steps=options.grad_accum, use_cpu=cpu,
        bf16=not cpu and torch.cuda.is_bf16_supported(), gradient_checkpointing=not cpu, max_length=None,
        eval_strategy="no" if eval_set is None else "steps", eval_steps=options.save_steps, report_to="none",
        dataloader_num_workers=0, disable_tqdm=not progress, remove_unused_columns=False,
        **({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, float(options.sft_weight)]} if options.sft_weight else {}),
    )
    trainer = _trainer_class()(
        model=model, ref_model=reference, args=args, train_dataset=train_set, eval_dataset=eval_set,
        processing_class=processor, callbacks=[CurvesCallback(out, plot_dpo_curves), *callbacks],
    )
    trainer.panoseek_logprobs = options.logprobs == "panoseek"
    if trainer.panoseek_logprobs:
        use_token_logprobs(trainer.model)
        use_token_logprobs(trainer.ref_model)
    tick = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - tick
    state = trainer.state
    history = state.log_history
    losses = [entry["loss"] for entry in history if "loss" in entry]
    summary = {
        "finished": state.global_step >= options.max_steps, "step": state.global_step, "pairs": len(train_set),
        "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
        "last_margin": next((e["rewards/margins"] for e in reversed(history) if "rewards/margins" in e), None),
        "last_accuracy": next((e["rewards/accuracies"] for e in reversed(history) if "rewards/accuracies" in e), None),
        "eval_loss": [entry["eval_loss"] for entry in history if "eval_loss" in entry],
        "logprobs": options.logprobs, "seconds_this_session": seconds, "device": "cpu" if cpu else "cuda",
    }
    if not summary["finished"]:
        return summary
    final = out / FINAL_DIR
    trainer.save_model(str(final))
    copy_processor_files(model_dir, final)
    plot_dpo_curves(history, out)
    (final / "panoseek_sft.json").write_text(json.dumps(chat_info(pairs_info, pairs_dir), indent=2) + "\n")
    write_json(out / SUMMARY_FILE, summary)
    return summary
