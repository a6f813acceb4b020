"""Supervised fine-tuning of an image-text-to-text model on expert trajectories, with TRL.

``train_sft(model_dir, data_dir, out_dir, SFTOptions(...))`` fine-tunes any local model
that ``AutoModelForImageTextToText`` loads on the rows of ``panoseek data experts``
with TRL's ``SFTTrainer``. The loss is on each row's last reply (its decision) only
(:mod:`panoseek.training.collator`), which needs ``{% generation %}`` markers in the chat
template: the tiny model has them, TRL supplies them for the templates it knows
(Qwen3, SmolVLM, ...), any other template is refused with a message saying so.

The output folder holds one run: ``sft_run.json`` (what is trained, checked before
resuming), ``checkpoint-N/`` every ``save_steps`` (the last two kept), ``loss.png``, and
at the end ``final/`` (a model folder ``panoseek eval --agent vlm --model`` loads) and
``sft_summary.json``. A rerun of the same command resumes from the latest checkpoint
(after Ctrl-C or kill -9); a folder holding another run is refused and left untouched.

``codebook=True`` (``--codebook``) trains the task-conditioned codebook selective filter
between the vision merger and the language model (:mod:`panoseek.agents.visual_filter`)
with the model; ``codebook_only=True`` (``--codebook-only``) trains only the filter, the
model frozen. The filter starts at a zero gate (the base model exactly), is created from
the run seed, and is saved as ``visual_filter.*`` in every checkpoint and in ``final/``,
where ``load_vlm`` (the ``vlm`` agent) finds it. A base model folder that already holds a
filter keeps and trains it.

CPU runs use fp32 without gradient checkpointing; GPUs use bf16 (where supported) with
checkpointing. Batches have one fixed length (the longest row, rounded up), which keeps
CPU steps fast and GPU memory flat. Multi-GPU: ``accelerate launch -m panoseek train sft
...`` (docs/training.md).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from panoseek.envs.eval.records import config_mismatch, read_json, write_json
from panoseek.training.dataset import load_sft_dataset
from panoseek.training.expert_data import DATA_FILE, OLD_DEFAULTS

RUN_FILE = "sft_run.json"
SUMMARY_FILE = "sft_summary.json"
FINAL_DIR = "final"
LENGTH_MULTIPLE = 16  # the fixed batch length is the longest row rounded up to this
_ADDED_OPTIONS = {"length_bucket": None, "codebook": False, "codebook_only": False, "target_loss": 0.0}  # options added after runs existed: their value then
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".index.json")


class SFTError(ValueError):
    """A model folder, data folder, output folder or option that cannot be used; names it."""


@dataclass(frozen=True)
class SFTOptions:
    """Hyperparameters of one run (all part of its identity)."""

    max_steps: int = 200
    save_steps: int = 50
    lr: float = 1e-4
    seed: int = 0
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int | None = None  # fixed batch length; None: the longest row rounded up
    length_bucket: int | None = None  # pad each batch to a multiple of this instead (rows grouped by length)
    eval_steps: int | None = None  # None: at every checkpoint (with eval data)
    codebook: bool = False  # train the codebook selective filter (agents/visual_filter.py) with the model
    codebook_only: bool = False  # train only the filter; the model stays frozen (implies codebook)
    target_loss: float = 0.0  # weight of the target-map loss (training/target_map.py; 0: off)

    def check(self) -> None:
        if self.codebook_only and not self.codebook:
            raise SFTError("--codebook-only trains the codebook filter alone: give --codebook with it")
        for name in ("max_steps", "save_steps", "batch_size", "grad_accum", "length_bucket"):
            value = getattr(self, name)
            if value is None and name == "length_bucket":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SFTError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise SFTError(f"--lr must be a positive number, got {self.lr!r}")
        if (isinstance(self.target_loss, bool) or not isinstance(self.target_loss, (int, float))
                or not math.isfinite(self.target_loss) or self.target_loss < 0):
            raise SFTError(f"--target-loss must be a weight of 0 or more, got {self.target_loss!r}")


def load_model(model_dir: str | Path, trainer: str = "SFT"):
    """``(model, processor)`` from a local folder, in fp32 for training, as the ``vlm`` agent
    loads them; the folder must have a chat template. ``trainer`` names the caller in the
    errors; trainers other than SFT refuse a model with a codebook filter, which only SFT
    saves and resumes."""
    from panoseek.agents.visual_filter import visual_filter_of
    from panoseek.agents.vlm import VLMError, load_vlm

    try:
        model, processor = load_vlm(model_dir, dtype="float32")
    except VLMError as error:
        raise SFTError(str(error)) from None
    if not getattr(processor, "chat_template", None):
        raise SFTError(f"model folder {str(model_dir)!r} has no chat template (chat_template.jinja, or chat_template "
                       f"in tokenizer_config.json / processor_config.json): {trainer} renders conversations with it")
    if trainer != "SFT" and visual_filter_of(model) is not None:
        raise SFTError(f"model folder {str(model_dir)!r} has a codebook filter (visual_filter.*): {trainer} does not "
                       "save or resume it yet; train it with `panoseek train sft --codebook`")
    return model, processor


def training_template(processor: Any, model_dir: str | Path) -> str | None:
    """The chat template to train with: the model's own if it has generation markers (None),
    else TRL's training version of a template it knows."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(processor.chat_template):
        return None
    try:
        return get_training_chat_template(processor)
    except ValueError:
        raise SFTError(
            f"the chat template of {str(model_dir)!r} has no {{% generation %}}...{{% endgeneration %}} markers "
            "around assistant replies, and TRL has no training version of it: add the markers (see "
            "agents/tiny_model.py CHAT_TEMPLATE) so the loss can be put on the replies only"
        ) from None


def row_lengths(processor: Any, template: str | None, messages: Sequence[list], view_size: Sequence[int]) -> list[int]:
    """Tokens of each rendered row, images expanded (all views of a data folder share one size)."""
    from PIL import Image

    tokenizer = processor.tokenizer
    probe = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}],
                                          chat_template=template, tokenize=False)
    picture = Image.new("RGB", tuple(int(v) for v in view_size))
    expanded = len(processor(text=[probe], images=[picture], add_special_tokens=False)["input_ids"][0])
    per_image = expanded - len(tokenizer(probe, add_special_tokens=False)["input_ids"])
    texts = [processor.apply_chat_template(row, chat_template=template, tokenize=False) for row in messages]
    counts = [sum(1 for m in row for part in m["content"] if part.get("type") == "image") for row in messages]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [len(tokens) + count * per_image for tokens, count in zip(ids, counts)]


def fixed_length(lengths: Sequence[int], max_length: int | None, data_dir: Path) -> int:
    """The batch length: ``max_length`` if every row fits, else the longest row rounded up."""
    longest = max(lengths)
    if max_length is None:
        return int(math.ceil(longest / LENGTH_MULTIPLE) * LENGTH_MULTIPLE)
    if longest > max_length:
        raise SFTError(f"--max-length {max_length} is shorter than the longest row of {str(data_dir)!r} ({longest} "
                       "tokens): rows would lose their reply; raise it or leave it out")
    return int(max_length)


def check_out_dir(out: Path, config: dict[str, Any], run_file: str = RUN_FILE, kind: str = "SFT",
                  added: dict[str, Any] | None = None) -> None:
    """Refuse an output folder that holds anything but this same run (nothing is touched).

    ``run_file`` and ``kind`` name the trainer's run file (DPO and GRPO use this check too);
    ``added`` maps options added after runs existed to the value those runs had (default:
    SFT's).
    """
    if out.exists() and not out.is_dir():
        raise SFTError(f"--out {str(out)!r} exists and is not a folder")
    if (out / run_file).exists():
        # Runs from before an option existed ran with its value then (e.g. without the codebook filter).
        defaults = _ADDED_OPTIONS if added is None else added
        mismatch = config_mismatch({**defaults, **read_json(out / run_file)}, config, config.keys())
        if mismatch:
            raise SFTError(f"--out {str(out)!r} holds another training run ({'; '.join(mismatch)}); "
                           "give a new folder (nothing there was changed)")
    elif out.is_dir() and any(out.iterdir()):
        raise SFTError(f"--out {str(out)!r} is not empty and holds no panoseek {kind} run ({run_file}); "
                       "give a new folder (nothing there was changed)")


def resumed_weights(checkpoint: str):
    """The model of a checkpoint, loaded with ``from_pretrained``.

    ``save_pretrained`` writes Qwen2.5-VL's weights under the original checkpoint names
    (``visual.*``, ``model.layers.*``), which ``from_pretrained`` maps back; the Trainer's
    own resume loads the file as it is and, with transformers 5.24, matches no key (it
    warns about missing and unexpected keys and keeps the weights it has). So the weights
    come from here, and ``resume_from_checkpoint`` restores the optimizer, scheduler, RNG
    and data position.
    """
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(checkpoint, dtype="float32", local_files_only=True)


def with_filter(model: Any, options: SFTOptions, checkpoint: str | None) -> Any:
    """The model with its codebook filter: a resumed checkpoint's, the base folder's (``load_vlm``
    attached it), or a new one (gate zero, from the run seed); only the filter trainable with
    ``codebook_only``."""
    from panoseek.agents.visual_filter import (
        FILTER_CONFIG, VisualFilterError, attach_visual_filter, load_visual_filter, visual_filter_of,
    )

    try:
        if checkpoint is not None and (Path(checkpoint) / FILTER_CONFIG).is_file():
            load_visual_filter(model, checkpoint)
        elif options.codebook and visual_filter_of(model) is None:
            attach_visual_filter(model, seed=options.seed)
    except VisualFilterError as error:
        raise SFTError(str(error)) from None
    if options.codebook_only:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.startswith("visual_filter."))
    return model


def filter_checkpoints() -> Any:
    """A Trainer callback that writes the model's codebook filter into each checkpoint folder
    (``save_pretrained`` leaves it out of the weights file). Built here so that importing this
    module stays free of transformers."""
    from transformers import TrainerCallback

    from panoseek.agents.visual_filter import save_visual_filter, visual_filter_of

    class FilterCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, model=None, **kwargs):
            if model is not None and visual_filter_of(model) is not None and state.is_world_process_zero:
                save_visual_filter(model, Path(args.output_dir) / f"checkpoint-{state.global_step}")

    return FilterCheckpoints()


def target_map_trainer(weight: float, here_id: int, elsewhere_id: int) -> type:
    """TRL's ``SFTTrainer`` plus the target-map loss (:mod:`panoseek.training.target_map`)
    with ``weight`` and the ids of its two tokens, added in training only, so ``eval_loss``
    stays the replies' loss. Logged: ``reply_loss`` (``loss`` less the map's share),
    ``target_loss``, ``target_accuracy`` and the last two's ``eval_`` twins. Built here so
    that importing this module stays free of TRL."""
    from trl import SFTTrainer

    from panoseek.training.target_map import cell_scores, decoder_hidden_states, target_map_loss

    class TargetMapSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels, views = inputs.pop("target_labels"), inputs.pop("target_views")
            network = self.accelerator.unwrap_model(model)
            # return_outputs only when asked: TRL then recomputes the logits with a second forward
            with decoder_hidden_states(network) as hidden:
                result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                              num_items_in_batch=num_items_in_batch)
            loss, outputs = result if return_outputs else (result, None)
            scores = cell_scores(hidden[0], network.get_output_embeddings().weight, here_id, elsewhere_id)
            map_loss, accuracy = target_map_loss(scores, labels, views, here_id)
            mode = "train" if model.training else "eval"
            if model.training:
                self._metrics[mode]["reply_loss"].append(float(loss.detach()) * self._accumulation_share(num_items_in_batch))
            if not math.isnan(accuracy):  # a batch of path-search rows only has no map
                self._metrics[mode]["target_loss"].append(float(map_loss.detach()))
                self._metrics[mode]["target_accuracy"].append(accuracy)
            if model.training:
                loss = loss + weight * map_loss / self._accumulation_share(num_items_in_batch)
            return (loss, outputs) if return_outputs else loss

        def _accumulation_share(self, num_items_in_batch):
            """The divisor that makes a per-batch mean add up over accumulated batches as the
            reply loss does: the Trainer divides by the accumulation steps only a loss not
            already normalised by the items of all of them (``num_items_in_batch``)."""
            scaled = getattr(self, "loss_is_scaled_for_ga", None)
            if scaled is None:
                scaled = (self.model_accepts_loss_kwargs and num_items_in_batch is not None) or bool(self.compute_loss_func)
            return getattr(self, "current_gradient_accumulation_steps", 1) if scaled else 1

    return TargetMapSFTTrainer


def copy_processor_files(model_dir: Path, final: Path) -> None:
    """Tokenizer, processor and chat-template files of the base model, next to the trained weights."""
    for file in sorted(model_dir.iterdir()):
        if file.is_file() and not file.name.endswith(_WEIGHT_SUFFIXES) and not (final / file.name).exists():
            shutil.copy2(file, final / file.name)


def train_sft(
    model_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    options: SFTOptions = SFTOptions(),
    *,
    eval_dir: str | Path | None = None,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train (or resume) one SFT run into ``out_dir``; returns its summary.

    The summary says ``"finished"``: False when training stopped before ``max_steps``
    (a callback stopped it); rerunning resumes it.
    """
    import torch
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTConfig, SFTTrainer

    from panoseek.training.collator import LastReplyCollator
    from panoseek.training.curves import CurvesCallback, plot_curves

    options.check()
    model_dir, data_dir, out = Path(model_dir).resolve(), Path(data_dir).resolve(), Path(out_dir)
    eval_path = None if eval_dir is None else Path(eval_dir).resolve()
    data_info = read_json(data_dir / DATA_FILE) if (data_dir / DATA_FILE).is_file() else {}
    config = {"model": str(model_dir), "data": str(data_dir), "data_fingerprint": data_info.get("fingerprint"),
              "eval_data": None if eval_path is None else str(eval_path), **asdict(options)}
    check_out_dir(out, config)
    if (out / SUMMARY_FILE).is_file():
        return read_json(out / SUMMARY_FILE)  # this run has finished: nothing to do

    target_map = options.target_loss > 0
    train_set = load_sft_dataset(data_dir, target_map)
    eval_set = None if eval_path is None else load_sft_dataset(eval_path, target_map)
    model, processor = load_model(model_dir)
    if target_map:
        from panoseek.training.target_map import TargetMapError, target_token_ids

        try:
            _, here_id, elsewhere_id = target_token_ids(processor)
        except TargetMapError as error:
            raise SFTError(f"model folder {str(model_dir)!r}: {error}") from None
    template = training_template(processor, model_dir)
    view_size = data_info.get("view_size", (448, 252))
    lengths = row_lengths(processor, template, train_set["messages"], view_size)
    if eval_set is not None:
        eval_info = read_json(eval_path / DATA_FILE)
        lengths += row_lengths(processor, template, eval_set["messages"], eval_info.get("view_size", view_size))
    length = fixed_length(lengths, options.max_length, data_dir)
    if options.length_bucket is not None:
        # Rows grouped by length (LengthGroupedSampler) and each batch padded to a multiple of
        # the bucket: a handful of shapes instead of one per batch, and a median row no longer
        # pays for the longest (3x fewer tokens on the compact-chat expert data).
        train_set = train_set.add_column("length", lengths[: len(train_set)])
        if eval_set is not None:  # the Trainer groups eval batches the same way
            eval_set = eval_set.add_column("length", lengths[len(train_set):])
        length = -(-length // options.length_bucket) * options.length_bucket  # the tokenizer needs a multiple
    pad_to = options.length_bucket or length

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RUN_FILE, config)
    last = get_last_checkpoint(str(out))
    if last is not None:
        model = resumed_weights(last)
    model = with_filter(model, options, last)
    cpu = not torch.cuda.is_available()
    args = SFTConfig(
        output_dir=str(out), max_steps=options.max_steps, save_steps=options.save_steps, save_strategy="steps",
        save_total_limit=2, logging_steps=1, learning_rate=options.lr, seed=options.seed, data_seed=options.seed,
        per_device_train_batch_size=options.batch_size, per_device_eval_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum, use_cpu=cpu, bf16=not cpu and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=not cpu, assistant_only_loss=True, max_length=length, pad_to_multiple_of=pad_to,
        train_sampling_strategy="random" if options.length_bucket is None else "group_by_length",
        eval_strategy="no" if eval_set is None else "steps", eval_steps=options.eval_steps or options.save_steps,
        report_to="none", dataloader_num_workers=0, disable_tqdm=not progress, remove_unused_columns=False,
    )
    trainer_class = target_map_trainer(options.target_loss, here_id, elsewhere_id) if target_map else SFTTrainer
    trainer = trainer_class(
        model=model, args=args, train_dataset=train_set, eval_dataset=eval_set, processing_class=processor,
        data_collator=LastReplyCollator(processor, template, length, pad_to, target_map),
        callbacks=[CurvesCallback(out), filter_checkpoints(), *callbacks],
    )
    tick = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - tick
    state = trainer.state
    # the replies' loss (with the target-map loss, "loss" also holds the map's share)
    losses = [entry.get("reply_loss", entry["loss"]) for entry in state.log_history if "loss" in entry]
    summary = {
        "finished": state.global_step >= options.max_steps, "step": state.global_step, "length": length,
        "rows": len(train_set), "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
        "eval_loss": [entry["eval_loss"] for entry in state.log_history if "eval_loss" in entry],
        "seconds_this_session": seconds, "device": "cpu" if cpu else "cuda",
    }
    if not summary["finished"]:
        return summary
    final = out / FINAL_DIR
    trainer.save_model(str(final))
    from panoseek.agents.visual_filter import save_visual_filter, visual_filter_of

    if visual_filter_of(trainer.model) is not None:
        save_visual_filter(trainer.model, final)
    copy_processor_files(model_dir, final)
    plot_curves(state.log_history, out)
    # How the data's chat was rendered, which is how to evaluate the model (older data: the defaults).
    rendered = {"prompt_format": None, "chat": "panoseek", "history": None, **OLD_DEFAULTS}
    (final / "panoseek_sft.json").write_text(json.dumps(
        {key: data_info.get(key, default) for key, default in rendered.items()}, indent=2) + "\n")
    write_json(out / SUMMARY_FILE, summary)
    return summary
