"""panoseek.kernels: Triton kernels where the GPU is the bottleneck, each with a PyTorch reference.

* :func:`attention_with_map` - FlashAttention-style attention that also returns the
  attention paid to every key by chosen query rows (attention-guided cropping).
* :func:`token_logprobs` - per-token log-probabilities and entropies, chunked over the
  vocabulary projection (GRPO/DPO memory).
* :func:`sample_equirect` - batched perspective views of equirectangular panoramas.

Names load lazily so importing the package does not import triton or transformers.
The transformers attention function lives in ``panoseek.kernels.hf_attention``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "attention_with_map": "attention_map",
    "token_logprobs": "logprobs",
    "sample_equirect": "equirect_sampling",
    "choose_backend": "dispatch",
}

__all__ = sorted(_EXPORTS)



def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562). Written out here rather than
    shared, because kernels is a leaf that imports nothing of the project."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
