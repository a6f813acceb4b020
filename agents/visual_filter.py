"""A task-conditioned codebook selective filter between a VLM's vision merger and its language model.

Each visual token ``x`` (the merger's output, the language model's width ``H``) passes
the codebook bottleneck of Embodied-Codebook (:class:`~panoseek.agents.codebook.CodebookBottleneck`:
256 codes of dimension 10, softmax, dropout 0.1 on the probabilities, projected back),
its code scores conditioned on the task: the mean input embedding of the text before the
sequence's first image (padding excluded). In panoseek's chats that is the opening message
with the instruction, and nothing the model writes later (a reply, which training rows
contain, must not reach the image tokens it follows); in H*'s structure the instruction comes
after the first view, so the condition is the system prompt, the same for every task. A residual gate
``g`` (one value per channel, initialised at zero) mixes the result in::

    x' = x + g * (codebook(x, task) - x)

so ``g = 0`` is exactly the unfiltered model (the added term is an exact zero) and
``g = 1`` is the paper's full bottleneck. A pretrained model's logits are therefore
unchanged until the filter is trained (``panoseek train sft --codebook``).

How it attaches (:func:`attach_visual_filter`), for the Qwen2.5-VL family
(``Qwen2_5_VLForConditionalGeneration``, e.g. Qwen2.5-VL-3B-Instruct, and the tiny model
of ``panoseek model init-tiny``, which has the same architecture): the filter becomes the
submodule ``visual_filter`` of the loaded model (so ``.to()``, ``.eval()``, optimisers and
the Trainer see its parameters), and two PyTorch forward pre-hooks do the work:

* on ``model.model`` (``Qwen2_5_VLModel``): from ``input_ids`` and ``attention_mask``, where
  the image tokens are and each sequence's task embedding;
* on ``model.model.language_model``: its ``inputs_embeds``, into which ``Qwen2_5_VLModel``
  has just scattered the merger's output at the image tokens, with those rows filtered,
  each conditioned on its own sequence's task embedding.

So the filter sits exactly between the merger and the language model, whichever way the
vision tower was run (``generate`` in transformers 5 runs it before the first forward and
passes ``mm_encoder_outputs``; decoding steps hold no image token and pass through).
Videos are refused.
For Qwen2.5-VL-3B the filter has ``H`` = 2048: about 1.05 M parameters (the scores' linear
layer over 2 x 2048 inputs), next to 3.75 B.

Saving: the filter's weights are kept out of ``model.safetensors`` (``_keys_to_ignore_on_save``)
and written by :func:`save_visual_filter` beside it, as ``visual_filter.safetensors`` and
``visual_filter.json`` (its sizes). ``panoseek.agents.vlm.load_vlm(folder)`` re-attaches a
saved filter; a plain ``AutoModelForImageTextToText.from_pretrained(folder)`` does **not**
see it and loads the unfiltered model (the same logits as a zero gate would give).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from panoseek.agents.codebook import CodebookBottleneck

FILTER_WEIGHTS = "visual_filter.safetensors"
FILTER_CONFIG = "visual_filter.json"
FORMAT = "panoseek-visual-filter/1"
ATTRIBUTE = "visual_filter"  # the submodule name on the loaded model


class VisualFilterError(ValueError):
    """A model the filter cannot attach to, or a saved filter that does not fit; names it."""


@dataclass(frozen=True)
class FilterConfig:
    """The filter's sizes: ``hidden`` is the language model's width (the visual tokens' and the task embedding's)."""

    hidden: int
    size: int = 256
    code_dim: int = 10
    dropout: float = 0.1


class VisualFilter(nn.Module):
    """``x + gate * (codebook(x, task) - x)`` for visual tokens ``x`` (N, hidden) and their task embeddings."""

    def __init__(self, config: FilterConfig) -> None:
        super().__init__()
        self.config = config
        self.codebook = CodebookBottleneck(
            config.hidden, config.size, config.code_dim, config.dropout, condition_features=config.hidden
        )
        self.gate = nn.Parameter(torch.zeros(config.hidden))
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None  # (image-token mask (B, L), task embedding (B, H))

    def forward(self, tokens: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """Filtered tokens, in the dtype of ``tokens``; an exact copy of them while the gate is zero."""
        dtype = self.gate.dtype
        x, condition = tokens.to(dtype), task.to(dtype)
        delta = self.gate * (self.codebook(x, condition) - x)
        return tokens + delta.to(tokens.dtype)

    # ------------------------------------------------------------------ hooks

    def _capture_task(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        """Pre-hook on the inner model: where the image tokens are, and each sequence's task embedding."""
        self._pending = None
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if kwargs.get("pixel_values_videos") is not None:
            raise VisualFilterError("the visual filter handles images only; this call has videos (pixel_values_videos)")
        if input_ids is None:
            if kwargs.get("pixel_values") is not None:
                raise VisualFilterError(
                    "the visual filter needs input_ids with the images (it finds the image tokens there)"
                )
            return
        config = module.config
        images = input_ids == config.image_token_id
        if not bool(images.any()):  # a text-only call, or a decoding step after the prefill
            return
        # The opening text only: tokens before the first image of each row.
        text = (torch.cumsum(images.long(), dim=1) == 0) & (input_ids != config.video_token_id)
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 2:
            text = text & mask.bool()
        embeds = module.get_input_embeddings()(input_ids)
        weights = text.unsqueeze(-1).to(embeds.dtype)
        self._pending = (images, (embeds * weights).sum(1) / weights.sum(1).clamp(min=1.0))

    def _filter_inputs(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        """Pre-hook on the language model: its input embeddings with the image tokens filtered."""
        pending, self._pending = self._pending, None
        embeds = kwargs.get("inputs_embeds")
        if pending is None or embeds is None:
            return args, kwargs
        images, task = pending
        rows, columns = torch.nonzero(images.to(embeds.device), as_tuple=True)
        filtered = embeds.clone()
        filtered[rows, columns] = self(embeds[rows, columns], task.to(embeds.device)[rows])
        return args, {**kwargs, "inputs_embeds": filtered}


# --------------------------------------------------------------------- attach / save / load


def _parts(model: nn.Module) -> tuple[nn.Module, nn.Module, int]:
    """(inner model, language model, its width) of a Qwen2.5-VL-family model."""
    inner = getattr(model, "model", None)
    language = getattr(inner, "language_model", None)
    config = getattr(inner, "config", None)
    if getattr(inner, "visual", None) is None or language is None or not hasattr(config, "image_token_id"):
        raise VisualFilterError(
            f"{type(model).__name__} has no model.model.visual / model.model.language_model with an image_token_id: "
            "the visual filter attaches to Qwen2.5-VL-family models"
        )
    return inner, language, int(inner.get_input_embeddings().embedding_dim)


def attach_visual_filter(model: nn.Module, visual_filter: VisualFilter | None = None, *, seed: int = 0) -> VisualFilter:
    """Attach ``visual_filter`` (default: a new one, initialised from ``seed``, gate zero) to a loaded model.

    A model that already has a filter is refused; so is a filter whose width is not the model's."""
    inner, language, hidden = _parts(model)
    if isinstance(getattr(model, ATTRIBUTE, None), VisualFilter):
        raise VisualFilterError(f"{type(model).__name__} already has a visual filter")
    if visual_filter is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            visual_filter = VisualFilter(FilterConfig(hidden=hidden))
    if visual_filter.config.hidden != hidden:
        raise VisualFilterError(
            f"the visual filter is {visual_filter.config.hidden} wide but the model's tokens are {hidden}"
        )
    device = inner.get_input_embeddings().weight.device
    model.add_module(ATTRIBUTE, visual_filter.to(device).train(model.training))  # dropout only when training
    inner.register_forward_pre_hook(visual_filter._capture_task, with_kwargs=True)
    language.register_forward_pre_hook(visual_filter._filter_inputs, with_kwargs=True)
    ignore = set(getattr(model, "_keys_to_ignore_on_save", None) or ())
    model._keys_to_ignore_on_save = ignore | {f"{ATTRIBUTE}.{name}" for name in visual_filter.state_dict()}
    return visual_filter


def visual_filter_of(model: nn.Module) -> VisualFilter | None:
    """The filter attached to ``model`` (unwrapping DDP-style ``.module``), or None."""
    model = getattr(model, "module", model)
    found = getattr(model, ATTRIBUTE, None)
    return found if isinstance(found, VisualFilter) else None


def save_visual_filter(model: nn.Module, folder: str | Path) -> None:
    """Write the model's filter into a model folder (``visual_filter.safetensors`` + ``.json``)."""
    from safetensors.torch import save_file

    visual_filter = visual_filter_of(model)
    if visual_filter is None:
        raise VisualFilterError(f"{type(model).__name__} has no visual filter to save")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.detach().float().contiguous().cpu() for name, tensor in visual_filter.state_dict().items()}
    save_file(weights, str(folder / FILTER_WEIGHTS))
    (folder / FILTER_CONFIG).write_text(json.dumps({"format": FORMAT, **asdict(visual_filter.config)}, indent=2) + "\n")


def load_visual_filter(model: nn.Module, folder: str | Path) -> VisualFilter:
    """Attach the filter saved in ``folder`` to ``model``; a file that does not fit is one error naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path, weights_path = folder / FILTER_CONFIG, folder / FILTER_WEIGHTS
    try:
        saved = json.loads(config_path.read_text())
        if saved.pop("format", None) != FORMAT:
            raise ValueError(f"format is not {FORMAT!r}")
        config = FilterConfig(**saved)
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise VisualFilterError(f"{config_path}: not a readable visual filter config ({error})") from None
    _, _, hidden = _parts(model)
    if config.hidden != hidden:
        raise VisualFilterError(
            f"{config_path}: field 'hidden' is {config.hidden} but the model's visual tokens are {hidden} wide "
            "(the filter was trained for another model)"
        )
    visual_filter = VisualFilter(config)
    try:
        weights = load_file(str(weights_path))
    except (OSError, SafetensorError) as error:
        raise VisualFilterError(f"{weights_path}: missing or unreadable ({error})") from None
    expected = {name: tuple(tensor.shape) for name, tensor in visual_filter.state_dict().items()}
    found = {name: tuple(tensor.shape) for name, tensor in weights.items()}
    if found != expected:
        wrong = sorted(set(expected) ^ set(found)) or sorted(k for k in expected if expected[k] != found[k])
        raise VisualFilterError(
            f"{weights_path}: tensors do not match {config_path} ({wrong[0]}: "
            f"{found.get(wrong[0])} != expected {expected.get(wrong[0])})"
        )
    visual_filter.load_state_dict(weights)
    dtype = next(model.parameters()).dtype
    return attach_visual_filter(model, visual_filter.to(dtype if dtype.is_floating_point else torch.float32))
