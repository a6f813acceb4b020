"""Attention-guided cropping: where a vision-language model looks, as a crop of its view.

After "MLLMs Know Where to Look" (ViCrop, ICLR 2025) and "Visual Funnel". At one decoder
layer, the last prompt token's attention to the current view's image tokens says where
the model looks while it is about to answer; a crop around that place, fed back as a
second image, shows it the small target at a higher resolution.

* ``rel-att``: that attention (mean over heads) divided by the same map for the generic
  prompt :data:`GENERIC_PROMPT`, so places every prompt attends to (attention sinks)
  cancel out.
* ``grad-att``: per head, attention times the ReLU of its gradient of the answer's
  log-likelihood (the log-probability of the greedy next token, as ViCrop), mean over
  heads. The backward pass starts at the chosen layer: the layers below it run without
  autograd, the graph begins at that layer's attention output (the input of ``o_proj``),
  and the gradient of the attention probabilities of the last row is then exact,
  ``dL/dA[h, j] = dL/dout[h] . v[j]``, without backward through anything below.
* ``funnel``: the ``rel-att`` map, and a chain of crops around its peak that shrink
  geometrically to a size set by the map's normalised entropy (a sharp map zooms in
  far, a diffuse one hardly at all).

Maps come from ``panoseek.kernels.hf_attention`` (``attn_implementation="panoseek_map"``)
at the chosen layer only; every other layer runs SDPA, so no N x N attention matrix is
ever built. Image tokens are the ones between ``<|vision_start|>`` and ``<|vision_end|>``
(Qwen2-VL family); the last such span of a row is its current view, reshaped to the
merged grid ``image_grid_thw[1:] / spatial_merge_size`` (rows x cols). Boxes are in pixel
coordinates of the view as observed (``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

CROP_METHODS = ("none", "rel-att", "grad-att", "funnel")
GENERIC_PROMPT = "Write a general description of the image."
RATIOS = (1.0, 1.2, 1.4, 1.6, 1.8, 2.0)  # ViCrop's window sizes, in units of the base crop
BASE_FRACTION = 0.5  # the base crop's side, as a fraction of the view's shorter side
DEFAULT_DEPTH = 0.6  # ViCrop's layer 22 of 36 for Qwen2.5-VL-3B
FUNNEL_LEVELS = 2

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class CropSettings:
    """How an agent crops: ``method`` (one of :data:`CROP_METHODS` but ``none``) at decoder ``layer``."""

    method: str
    layer: int


def resolve_layer(layer: int | float | str | None, n_layers: int) -> int:
    """The decoder layer index for ``layer``: an index in ``[0, n_layers)``, a fraction of the
    depth in ``(0, 1)`` (``"0.6"``), or None for :data:`DEFAULT_DEPTH`."""
    if layer is None:
        layer = DEFAULT_DEPTH
    text = str(layer).strip()
    try:
        value = float(text) if isinstance(layer, float) or "." in text else int(text)
    except ValueError:
        raise ValueError(f"crop_layer must be a layer index or a fraction of depth, got {layer!r}") from None
    if isinstance(value, float):
        if not 0.0 < value < 1.0:
            raise ValueError(f"crop_layer {layer!r} is out of range: a fraction of depth must lie in (0, 1)")
        return min(n_layers - 1, round(value * n_layers))
    if not 0 <= value < n_layers:
        raise ValueError(
            f"crop_layer {value} is out of range: the model has {n_layers} decoder layers "
            f"(give 0..{n_layers - 1} or a fraction of depth in (0, 1))"
        )
    return value


# --- maps -> boxes (pure numpy) ---------------------------------------------------------


def _check_map(att_map: Any) -> np.ndarray:
    att = np.asarray(att_map, dtype=np.float64)
    if att.ndim != 2 or att.size == 0:
        raise ValueError(f"an attention map must be a non-empty 2-D grid, got shape {att.shape}")
    if not np.isfinite(att).all() or att.min() < 0:
        raise ValueError("an attention map must hold finite, non-negative values")
    return att


def _is_flat(att: np.ndarray) -> bool:
    return float(np.ptp(att)) <= 1e-9 * max(float(att.max()), 1e-30)


def relative_map(question: Any, generic: Any, eps: float = 1e-12) -> np.ndarray:
    """ViCrop's relative attention: each map normalised to sum 1, the question's divided by
    the generic prompt's, the result normalised to sum 1 (so it is invariant to either
    map's scale, and a question map proportional to the generic one gives a flat map)."""
    q, g = _check_map(question), _check_map(generic)
    if q.shape != g.shape:
        raise ValueError(f"question map {q.shape} and generic map {g.shape} differ in shape")
    q = q / max(q.sum(), eps)
    g = g / max(g.sum(), eps)
    ratio = q / np.maximum(g, eps)
    return ratio / max(ratio.sum(), eps)


def map_entropy(att_map: Any) -> float:
    """Entropy of the map as a distribution, divided by its maximum ``log(cells)``: 0 for one
    hot cell, 1 for a flat map (and for a single-cell map)."""
    att = _check_map(att_map)
    total = att.sum()
    if att.size == 1 or total <= 0:
        return 1.0
    p = att.ravel() / total
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(att.size))


def _box(cx: float, cy: float, width: float, height: float, image_size: tuple[int, int]) -> Box:
    """A ``width`` x ``height`` box centred at (cx, cy), shifted (not shrunk) to lie inside the image."""
    W, H = image_size
    width, height = min(max(width, 1.0), W), min(max(height, 1.0), H)
    x0 = min(max(cx - width / 2, 0.0), W - width)
    y0 = min(max(cy - height / 2, 0.0), H - height)
    x0i, y0i = int(round(x0)), int(round(y0))
    return x0i, y0i, min(W, x0i + max(1, int(round(width)))), min(H, y0i + max(1, int(round(height))))


def _window_sums(att: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """Sums of every bh x bw window (integral image): ``[rows - bh + 1, cols - bw + 1]``."""
    integral = np.pad(att.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return integral[bh:, bw:] - integral[:-bh, bw:] - integral[bh:, :-bw] + integral[:-bh, :-bw]


def crop_box(att_map: Any, image_size: tuple[int, int], base: float | None = None, ratios: Sequence[float] = RATIOS) -> Box:
    """ViCrop's adaptive crop: square windows of ``base * ratio`` pixels slide over the map;
    for each ratio the window of most attention is found, and the ratio kept is the one
    whose best window stands out most from its four neighbouring positions (per cell).

    ``image_size`` is the view's (width, height); ``base`` defaults to
    :data:`BASE_FRACTION` of its shorter side. Where several windows tie for the most
    attention (a peak on the seam between cells), the box is centred on their mean. A flat
    map prefers no place and gives the whole view, as does a window covering the whole grid.
    """
    att = _check_map(att_map)
    W, H = (int(v) for v in image_size)
    if W < 1 or H < 1:
        raise ValueError(f"image size must be positive, got {image_size!r}")
    rows, cols = att.shape
    full = (0, 0, W, H)
    if _is_flat(att):
        return full
    base = BASE_FRACTION * min(W, H) if base is None else float(base)
    cell_w, cell_h = W / cols, H / rows
    best = None
    for index, ratio in enumerate(ratios):
        side = base * ratio
        bw = min(max(1, int(side / cell_w)), cols)
        bh = min(max(1, int(side / cell_h)), rows)
        if bw >= cols and bh >= rows:
            if index == 0:
                return full
            continue
        sums = _window_sums(att, bh, bw)
        y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
        neighbours = [sums[y + dy, x + dx] for dy, dx in ((0, -1), (0, 1), (-1, 0), (1, 0))
                      if 0 <= y + dy < sums.shape[0] and 0 <= x + dx < sums.shape[1]]
        sharpness = (sums[y, x] - np.mean(neighbours)) / (bw * bh)
        if best is None or sharpness > best[0]:
            best = (sharpness, side, sums, bw, bh)
    _, side, sums, bw, bh = best
    peak = sums.max()
    ys, xs = np.nonzero(sums >= peak - 1e-9 * abs(peak))
    cx, cy = (xs.mean() + bw / 2) * cell_w, (ys.mean() + bh / 2) * cell_h
    return _box(cx, cy, side, side, (W, H))


def funnel_boxes(att_map: Any, image_size: tuple[int, int], levels: int = FUNNEL_LEVELS) -> list[Box]:
    """A chain of ``levels`` boxes centred on the map's peak, largest first, with the view's
    aspect ratio. The innermost keeps a fraction ``s = max(entropy, 1 / min(rows, cols))`` of
    each side (:func:`map_entropy`); level k of n keeps ``s ** (k / n)``. A flat map
    (entropy 1) gives the whole view at every level."""
    att = _check_map(att_map)
    if int(levels) < 1:
        raise ValueError(f"a funnel needs at least one level, got {levels!r}")
    W, H = (int(v) for v in image_size)
    rows, cols = att.shape
    inner = max(map_entropy(att), 1.0 / min(rows, cols))
    ys, xs = np.nonzero(att >= att.max() - 1e-9 * att.max())
    cx, cy = (xs.mean() + 0.5) * W / cols, (ys.mean() + 0.5) * H / rows
    return [_box(cx, cy, W * inner ** (k / levels), H * inner ** (k / levels), (W, H)) for k in range(1, int(levels) + 1)]


def crop_images(view: Image.Image, boxes: Sequence[Box]) -> list[Image.Image]:
    """The view cut to each box and resized (bicubic, aspect kept) to about the view's pixel
    count, so the processor gives a crop as many image tokens as the view: a closer look."""
    crops = []
    for box in boxes:
        crop = view.crop(box)
        scale = math.sqrt(view.width * view.height / (crop.width * crop.height))
        size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
        crops.append(crop if size == crop.size else crop.resize(size, Image.BICUBIC))
    return crops


# --- model -> maps ----------------------------------------------------------------------


def decoder_attention(model: Any, layer: int) -> torch.nn.Module:
    """The language model's attention module of decoder layer ``layer`` (its ``layer_idx``)."""
    for module in model.modules():
        if getattr(module, "layer_idx", None) == layer and hasattr(module, "v_proj") and hasattr(module, "o_proj"):
            return module
    raise ValueError(f"the model has no decoder attention module with layer_idx={layer} (with v_proj and o_proj)")


def last_token_maps(model: Any, inputs: dict[str, Any], layer: int, *, gradient: bool = False) -> torch.Tensor:
    """``[batch, n_tokens]`` float32: the last token's attention at ``layer``, mean over heads,
    or with ``gradient`` the grad-att map (see the module docstring). The model must run
    ``panoseek_map`` attention; left padding keeps every row's last token at index -1."""
    from panoseek.kernels.hf_attention import AttentionMaps

    if not gradient:
        with torch.no_grad(), AttentionMaps([layer], rows=(-1,), reduce="mean") as maps:
            model(**inputs, logits_to_keep=1)
        return maps[layer][:, 0]
    attention = decoder_attention(model, layer)
    saved: dict[str, torch.Tensor] = {}

    def keep_values(module, args, output):
        saved["values"] = output.detach()

    def start_graph(module, args):
        torch.set_grad_enabled(True)  # from here on (restored when the no_grad block ends)
        saved["out"] = args[0].detach().requires_grad_(True)
        return (saved["out"], *args[1:])

    hooks = [attention.v_proj.register_forward_hook(keep_values), attention.o_proj.register_forward_pre_hook(start_graph)]
    try:
        with torch.no_grad(), AttentionMaps([layer], rows=(-1,), reduce="none") as maps:
            logits = model(**inputs, logits_to_keep=1).logits[:, -1].float()
        with torch.enable_grad():
            log_likelihood = torch.log_softmax(logits, dim=-1).max(dim=-1).values.sum()
            (grad_out,) = torch.autograd.grad(log_likelihood, saved["out"])
    finally:
        for hook in hooks:
            hook.remove()
    probs = maps[layer][:, :, 0]  # [batch, heads, n]
    batch, heads, n = probs.shape
    g = grad_out[:, -1].float().reshape(batch, heads, -1)  # dL/d(attention output of the last row)
    values = saved["values"].float().reshape(batch, n, -1, g.shape[-1])
    values = values.repeat_interleave(heads // values.shape[2], dim=2)  # kv head of each query head
    grad_probs = torch.einsum("bhd,bnhd->bhn", g, values)
    return (probs * grad_probs.clamp(min=0)).mean(dim=1)


def view_maps(token_maps: torch.Tensor, inputs: dict[str, Any], config: Any) -> list[np.ndarray]:
    """Each row's map over the image tokens of its last image, as a rows x cols grid."""
    ids = inputs["input_ids"]
    grids = inputs["image_grid_thw"]
    merge = int(config.vision_config.spatial_merge_size)
    start_id, end_id = int(config.vision_start_token_id), int(config.vision_end_token_id)
    out, seen = [], 0
    for row in range(ids.shape[0]):
        starts = (ids[row] == start_id).nonzero().flatten().tolist()
        ends = (ids[row] == end_id).nonzero().flatten().tolist()
        if not starts or len(starts) != len(ends):
            raise ValueError(f"row {row} has {len(starts)} vision starts and {len(ends)} vision ends")
        seen += len(starts)
        t, h, w = (int(v) for v in grids[seen - 1])
        rows, cols = h // merge, w // merge
        tokens = token_maps[row, starts[-1] + 1 : ends[-1]]
        if t != 1 or tokens.numel() != rows * cols:
            raise ValueError(f"row {row}: {tokens.numel()} image tokens do not fill a {t}x{rows}x{cols} merged grid")
        out.append(tokens.reshape(rows, cols).double().cpu().numpy())
    return out
