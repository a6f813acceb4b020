"""A transformers attention function that hands back attention maps at chosen layers.

Importing this module registers ``"panoseek_map"`` in transformers' attention registry
(``AttentionInterface``) and its mask registry (masks are built as for SDPA). A model
loaded with ``attn_implementation="panoseek_map"`` (or switched with
``model.set_attn_implementation("panoseek_map")``) runs SDPA everywhere, except in the
layers named by an active :class:`AttentionMaps`, where :func:`attention_with_map`
computes the output and the key mass of the chosen query rows::

    with AttentionMaps(layers=(14,), rows=(-1,)) as maps:
        model(**inputs)
    relevance = maps[14]          # [batch, rows, n_keys], heads averaged

Layers are recognised by the ``layer_idx`` attribute of decoder attention modules (the
vision tower's attention has none and always runs SDPA).
"""

from __future__ import annotations

import contextvars
from typing import Iterable, Sequence

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from panoseek.kernels.attention_map import attention_with_map

ATTENTION_NAME = "panoseek_map"

_ACTIVE: contextvars.ContextVar["AttentionMaps | None"] = contextvars.ContextVar("panoseek_attention_maps", default=None)


class AttentionMaps:
    """Collects key-mass maps for ``layers`` while active (a context manager).

    ``rows`` are query-row indices (negative counts from the end); ``reduce`` is ``"mean"``
    or ``"sum"`` over heads. ``maps[layer]`` holds the latest forward's float32
    ``[batch, len(rows), n_keys]`` tensor for that layer.
    """

    def __init__(
        self, layers: Iterable[int], rows: Sequence[int] | torch.Tensor = (-1,), *, reduce: str = "mean", backend: str = "auto"
    ) -> None:
        self.layers = frozenset(int(layer) for layer in layers)
        if not self.layers:
            raise ValueError("AttentionMaps needs at least one layer index")
        self.rows = rows
        self.reduce = reduce
        self.backend = backend
        self.maps: dict[int, torch.Tensor] = {}
        self._token: contextvars.Token | None = None

    def __getitem__(self, layer: int) -> torch.Tensor:
        if layer not in self.maps:
            raise KeyError(f"no attention map for layer {layer}; collected layers: {sorted(self.maps)}")
        return self.maps[layer]

    def __enter__(self) -> "AttentionMaps":
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.reset(self._token)
        self._token = None


def panoseek_map_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers attention-interface function (same contract as ``sdpa_attention_forward``)."""
    collector = _ACTIVE.get()
    layer = getattr(module, "layer_idx", None)
    if collector is None or layer not in collector.layers:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    if dropout and module.training:
        raise ValueError(f"attention maps are computed without dropout; layer {layer} has dropout={dropout} in training")
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    mask = attention_mask
    if mask is not None:
        # SDPA-style masks already hold the causal pattern (and any padding).
        mask, causal = mask[:, :, :, : key.shape[2]], False
    out, mass = attention_with_map(
        query, key, value, causal=causal, map_rows=collector.rows, scale=scaling,
        reduce=collector.reduce, attn_mask=mask, backend=collector.backend,
    )
    collector.maps[layer] = mass
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Register ``"panoseek_map"`` with transformers (idempotent; done on import)."""
    AttentionInterface.register(ATTENTION_NAME, panoseek_map_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


register()
