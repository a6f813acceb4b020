"""Backend choice: Triton on CUDA or under TRITON_INTERPRET, the PyTorch reference otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from panoseek.envs.render_torch import render_views_torch
from panoseek.kernels import attention_with_map, dispatch, token_logprobs


def test_auto_on_cpu_follows_the_interpreter_variable_at_call_time(monkeypatch):
    x = torch.zeros(2)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert dispatch.choose_backend("auto", x) == "torch"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert dispatch.choose_backend("auto", x) == "triton"
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert dispatch.choose_backend("auto", x) == "torch"


def test_without_triton_auto_falls_back_and_triton_is_refused(monkeypatch):
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert dispatch.choose_backend("auto", torch.zeros(1)) == "torch"
    assert dispatch.choose_backend("torch", torch.zeros(1)) == "torch"
    with pytest.raises(RuntimeError, match="needs the triton package"):
        dispatch.choose_backend("triton", torch.zeros(1))


def test_other_devices_use_the_reference_and_bad_names_are_refused():
    meta = torch.empty(2, device="meta")
    assert dispatch.choose_backend("auto", meta) == "torch"
    with pytest.raises(ValueError, match="not on meta"):
        dispatch.choose_backend("triton", meta)
    with pytest.raises(ValueError, match="backend must be one of"):
        dispatch.choose_backend("cuda", meta)
    with pytest.raises(ValueError, match="one device"):
        dispatch.choose_backend("auto", torch.zeros(1), meta)


@pytest.fixture
def no_triton(monkeypatch):
    """Triton reported missing; any launch of a Triton path would fail the test."""
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    launched = []
    monkeypatch.setattr(dispatch.LazyKernel, "__getitem__", lambda self, grid: launched.append(self.fn.__name__))
    yield launched
    assert launched == []


def test_public_functions_fall_back_to_the_reference(no_triton):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 8, generator=gen) for _ in range(3))
    out, mass = attention_with_map(q, k, v, map_rows=[-1])
    ref_out, ref_mass = attention_with_map(q, k, v, map_rows=[-1], backend="torch")
    assert torch.equal(out, ref_out) and torch.equal(mass, ref_mass)

    hidden, weight = torch.randn(4, 8, generator=gen), torch.randn(11, 8, generator=gen)
    targets = torch.tensor([1, 2, 3, -100])
    assert torch.equal(token_logprobs(hidden, weight, targets), token_logprobs(hidden, weight, targets, backend="torch"))

    pano = torch.randint(0, 255, (8, 16, 3), dtype=torch.uint8, generator=gen)
    assert torch.equal(render_views_torch(pano, 30.0, 10.0, size=(6, 4)), render_views_torch(pano, 30.0, 10.0, size=(6, 4), backend="torch"))


def test_auto_uses_the_triton_kernels_when_interpreting(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    launched = []
    original = dispatch.LazyKernel.__getitem__

    def spy(self, grid):
        launched.append(self.fn.__name__)
        return original(self, grid)

    monkeypatch.setattr(dispatch.LazyKernel, "__getitem__", spy)
    pano = torch.randint(0, 255, (8, 16, 3), dtype=torch.uint8)
    auto = render_views_torch(pano, 30.0, 10.0, size=(6, 4))
    assert launched == ["_sample_views"]
    assert (auto.int() - render_views_torch(pano, 30.0, 10.0, size=(6, 4), backend="torch").int()).abs().max() <= 1


def test_interpreter_variable_set_before_triton_is_imported():
    # Triton reads TRITON_INTERPRET when it is first imported; the kernels must work in that mode too.
    code = (
        "import torch\n"
        "from panoseek.envs.render_torch import render_views_torch\n"
        "pano = torch.randint(0, 255, (8, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))\n"
        "a = render_views_torch(pano, [30.0, 300.0], 10.0, size=(6, 4))\n"
        "b = render_views_torch(pano, [30.0, 300.0], 10.0, size=(6, 4), backend='torch')\n"
        "assert (a.int() - b.int()).abs().max() <= 1, (a, b)\n"
        "import triton.language as tl, triton.runtime.interpreter as i\n"
        "assert isinstance(tl.zeros, i.InterpretedFunction)\n"
    )
    env = dict(os.environ, TRITON_INTERPRET="1")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
