"""Choose between a Triton kernel and its PyTorch reference, and launch kernels.

Every kernel in ``panoseek.kernels`` has a PyTorch reference. ``backend="auto"`` picks
Triton when the tensors live on a CUDA device (or, on the CPU, when ``TRITON_INTERPRET=1``
is set) and the reference otherwise; ``"triton"`` and ``"torch"`` force one side.

Kernels are plain Python functions wrapped by :class:`LazyKernel`, which decides at
*launch* time whether to compile them for the GPU (``triton.jit``) or to run them in
Triton's CPU interpreter. Triton itself makes that choice once, when ``@triton.jit``
decorates the function, by reading ``TRITON_INTERPRET`` at import; deciding per launch
means the order in which a process imports modules or sets the variable does not matter.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from typing import Any, Callable

import torch

BACKENDS = ("auto", "triton", "torch")


def triton_available() -> bool:
    """Whether the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def interpreter_requested() -> bool:
    """Whether ``TRITON_INTERPRET`` asks for the CPU interpreter (read at call time)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def choose_backend(backend: str, *tensors: torch.Tensor) -> str:
    """Resolve ``backend`` to ``"triton"`` or ``"torch"`` for tensors on one device."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(str(d) for d in devices)}")
    device = next(iter(devices)) if devices else torch.device("cpu")
    if device.type not in ("cpu", "cuda"):
        if backend == "triton":
            raise ValueError(f"the Triton kernels run on CUDA or the CPU interpreter, not on {device}")
        return "torch"
    if backend == "torch":
        return "torch"
    if backend == "triton":
        if not triton_available():
            raise RuntimeError("backend='triton' needs the triton package, which is not installed")
        return "triton"
    if not triton_available():
        return "torch"
    if device.type == "cuda":
        return "triton"
    return "triton" if interpreter_requested() else "torch"


class LazyKernel:
    """A Triton kernel compiled for CUDA tensors and interpreted for CPU tensors.

    ``kernel[grid](*args, **meta)`` works as with ``@triton.jit``; the first tensor
    argument picks the mode (see :func:`interpreting`). Launch options that only matter on
    a GPU (``num_warps``, ``num_stages``) are dropped by the interpreter.
    """

    def __init__(self, fn: Callable, autotune: dict | None = None) -> None:
        self.fn = fn
        self.autotune = autotune
        self._compiled = None
        self._interpreted = None

    def __getitem__(self, grid: Any) -> Callable:
        def launch(*args: Any, **kwargs: Any) -> Any:
            first = next(a for a in args if isinstance(a, torch.Tensor))
            if not interpreting(first):
                return self._variant(False)[grid](*args, **kwargs)
            with _nested_jit_interpreted():
                return self._variant(True)[grid](*args, **kwargs)

        return launch

    def _variant(self, interpret: bool):
        if interpret:
            if self._interpreted is None:
                from triton.runtime.interpreter import InterpretedFunction

                self._interpreted = InterpretedFunction(self.fn)
            return self._interpreted
        if self._compiled is None:
            import triton
            from triton.runtime.jit import JITFunction

            compiled = JITFunction(self.fn)
            self._compiled = triton.autotune(**self.autotune)(compiled) if self.autotune else compiled
        return self._compiled


@contextlib.contextmanager
def _nested_jit_interpreted():
    """Let an interpreted kernel call ``@triton.jit`` helpers (``tl.zeros``, ``tl.sum``...).

    When ``triton`` was imported without ``TRITON_INTERPRET=1`` its library helpers are
    compiled-only ``JITFunction`` objects that refuse to be called from Python. While an
    interpreted kernel runs, route such calls through the interpreter as Triton would have
    done had the variable been set at import.
    """
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    original = JITFunction.__call__

    def call(self, *args, **kwargs):
        interpreted = _INTERPRETED_HELPERS.get(self.fn)
        if interpreted is None:
            interpreted = _INTERPRETED_HELPERS[self.fn] = InterpretedFunction(self.fn)
        return interpreted(*args, **kwargs)

    with _PATCH_LOCK:
        JITFunction.__call__ = call
        try:
            yield
        finally:
            JITFunction.__call__ = original


_INTERPRETED_HELPERS: dict = {}
_PATCH_LOCK = threading.Lock()


def kernel(fn: Callable | None = None, *, autotune: dict | None = None):
    """Decorator: mark ``fn`` (written in ``triton.language``) as a :class:`LazyKernel`.

    ``autotune`` (``triton.autotune``'s ``configs``/``key``) applies to GPU launches only:
    the interpreter mishandles several configs, so CPU launches pass the tile sizes
    themselves (see :func:`interpreting`).
    """
    if fn is None:
        return lambda f: LazyKernel(f, autotune)
    return LazyKernel(fn, autotune)


def interpreting(tensor: torch.Tensor) -> bool:
    """Whether a launch on ``tensor`` runs in Triton's interpreter (rather than compiled).

    CPU tensors always are; CUDA tensors are when ``TRITON_INTERPRET`` asks for it.
    """
    return tensor.device.type == "cpu" or interpreter_requested()
