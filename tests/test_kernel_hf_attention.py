"""The "panoseek_map" transformers attention function on a tiny Qwen2.5-VL-architecture model."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.utils import logging as hf_logging

from panoseek.kernels.hf_attention import ATTENTION_NAME, AttentionMaps


@pytest.fixture(scope="module")
def tiny_model():
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the tiny vocabulary triggers warnings about special token ids
    try:
        config = tiny_config()
    finally:
        hf_logging.set_verbosity(verbosity)
    torch.manual_seed(0)
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def tiny_config() -> Qwen2_5_VLConfig:
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256,
            rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
        ),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64),
    )


def run(model, implementation, **inputs):
    model.set_attn_implementation(implementation)
    with torch.no_grad():
        return model(**inputs, output_attentions=implementation == "eager")


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_model_output_and_maps_match_eager_attention(tiny_model, backend):
    ids = torch.randint(0, 128, (2, 19), generator=torch.Generator().manual_seed(1))
    eager = run(tiny_model, "eager", input_ids=ids)
    with AttentionMaps(layers=[1], rows=[-1, 5], backend=backend) as maps:
        ours = run(tiny_model, ATTENTION_NAME, input_ids=ids)
    torch.testing.assert_close(ours.logits, eager.logits, atol=1e-5, rtol=0)
    assert sorted(maps.maps) == [1]
    want = eager.attentions[1][:, :, [18, 5]].mean(1)  # heads averaged
    assert maps[1].shape == (2, 2, 19)
    torch.testing.assert_close(maps[1], want, atol=1e-6, rtol=0)


def test_padding_mask_is_honoured_at_map_layers(tiny_model):
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(2))
    attention_mask = torch.ones(2, 12, dtype=torch.long)
    attention_mask[0, :3] = 0  # left padding in sequence 0
    eager = run(tiny_model, "eager", input_ids=ids, attention_mask=attention_mask)
    with AttentionMaps(layers=[0, 1], rows=[-1], reduce="sum") as maps:
        ours = run(tiny_model, ATTENTION_NAME, input_ids=ids, attention_mask=attention_mask)
    torch.testing.assert_close(ours.logits[0, 3:], eager.logits[0, 3:], atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.logits[1], eager.logits[1], atol=1e-5, rtol=0)
    for layer in (0, 1):
        torch.testing.assert_close(maps[layer], eager.attentions[layer][:, :, [11]].sum(1), atol=1e-6, rtol=0)
    assert maps[0][0, 0, :3].abs().max().item() == 0.0


def test_without_collector_the_function_is_plain_sdpa(tiny_model):
    ids = torch.randint(0, 128, (1, 9), generator=torch.Generator().manual_seed(3))
    sdpa = run(tiny_model, "sdpa", input_ids=ids)
    ours = run(tiny_model, ATTENTION_NAME, input_ids=ids)
    torch.testing.assert_close(ours.logits, sdpa.logits, atol=0, rtol=0)
    with AttentionMaps(layers=[7]) as maps:  # no such layer: nothing collected
        run(tiny_model, ATTENTION_NAME, input_ids=ids)
    with pytest.raises(KeyError, match="no attention map for layer 7"):
        maps[7]


def test_collector_needs_a_layer():
    with pytest.raises(ValueError, match="at least one layer"):
        AttentionMaps(layers=[])
