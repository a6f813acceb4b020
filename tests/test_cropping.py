"""Attention-guided cropping: boxes from maps, maps from the kernel path, crop turns."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from panoseek.agents import cropping
from panoseek.agents.chat import EpisodeChat
from panoseek.agents.cropping import crop_box, funnel_boxes, map_entropy, relative_map, resolve_layer
from panoseek.agents.vlm import VLMAgent, VLMError, VLMPolicy, load_vlm

SIZE = (448, 252)  # the standard view: 8 x 6 cells of 56 x 42 pixels below
TASK = {"kind": "HOS", "instruction": "Find the red clock.", "seed": 0}


def peaked(cells, shape=(6, 8)) -> np.ndarray:
    att = np.zeros(shape)
    for cell in cells:
        att[cell] = 1.0
    return att


def contains(box, x0, y0, x1, y1) -> bool:
    return box[0] <= x0 and box[1] <= y0 and box[2] >= x1 and box[3] >= y1


# --- maps -> boxes -----------------------------------------------------------------------


def test_peak_on_a_seam_centres_the_box_on_the_seam():
    box = crop_box(peaked([(2, 3), (2, 4)]), SIZE)  # the seam between columns 3 and 4 is x = 224
    assert abs((box[0] + box[2]) / 2 - 224) <= 1 and abs((box[1] + box[3]) / 2 - 105) <= 1
    assert contains(box, 168, 84, 280, 126)
    box = crop_box(peaked([(2, 3), (3, 3)]), SIZE)  # rows 2 and 3 meet at y = 126
    assert abs((box[1] + box[3]) / 2 - 126) <= 1 and contains(box, 168, 84, 224, 168)


def test_peak_in_a_corner_gives_a_box_in_that_corner():
    box = crop_box(peaked([(0, 0)]), SIZE)
    assert box[:2] == (0, 0) and contains(box, 0, 0, 56, 42) and box[2] < SIZE[0]
    box = crop_box(peaked([(5, 7)]), SIZE)
    assert box[2:] == SIZE and contains(box, 392, 210, 448, 252) and box[0] > 0
    assert box[2] - box[0] == box[3] - box[1]  # ViCrop's windows are square


def test_one_hot_cell_gets_the_base_window_and_a_flat_map_the_whole_view():
    box = crop_box(peaked([(2, 3)]), SIZE)
    assert (box[2] - box[0], box[3] - box[1]) == (126, 126)  # ratio 1 of half the short side
    assert contains(box, 168, 84, 224, 126)
    assert crop_box(np.full((6, 8), 0.3), SIZE) == (0, 0, *SIZE)
    assert crop_box(peaked([(0, 0)], shape=(2, 2)), (56, 56), base=56) == (0, 0, 56, 56)  # the window is the grid


def test_bad_maps_are_named():
    with pytest.raises(ValueError, match="non-empty 2-D grid"):
        crop_box(np.zeros(5), SIZE)
    with pytest.raises(ValueError, match="finite, non-negative"):
        crop_box(np.array([[1.0, np.nan]]), SIZE)
    with pytest.raises(ValueError, match="differ in shape"):
        relative_map(np.ones((2, 2)), np.ones((2, 3)))


def test_relative_attention_cancels_what_every_prompt_attends_to():
    generic = np.full((6, 8), 0.01)
    generic[0, 0] = 5.0  # an attention sink
    question = generic.copy()
    question[4, 6] = 0.5  # the question's target: far less raw attention than the sink
    rel = relative_map(question, generic)
    assert np.unravel_index(question.argmax(), question.shape) == (0, 0)
    assert np.unravel_index(rel.argmax(), rel.shape) == (4, 6)
    assert rel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(relative_map(3 * question, 0.5 * generic), rel, rtol=1e-12)  # scale-free
    np.testing.assert_allclose(relative_map(question, 7 * question), np.full((6, 8), 1 / 48), rtol=1e-12)
    assert crop_box(relative_map(question, 7 * question), SIZE) == (0, 0, *SIZE)


def test_funnel_chain_shrinks_around_the_peak_by_entropy():
    assert map_entropy(peaked([(1, 1)])) == 0.0 and map_entropy(np.ones((6, 8))) == pytest.approx(1.0)
    sharp = funnel_boxes(peaked([(2, 5)]), SIZE, levels=2)
    assert len(sharp) == 2 and all(contains(b, 280, 84, 336, 126) for b in sharp)
    widths = [b[2] - b[0] for b in sharp]
    assert widths[0] > widths[1] and widths[1] == round(448 / 6)  # entropy 0: one cell of the short grid side
    assert contains(sharp[0], *sharp[1])
    blob = np.ones((6, 8))
    blob[2, 5] = 3.0
    diffuse = funnel_boxes(blob, SIZE, levels=2)
    assert diffuse[1][2] - diffuse[1][0] > widths[1]  # higher entropy, larger crops
    assert funnel_boxes(np.ones((6, 8)), SIZE) == [(0, 0, *SIZE)] * cropping.FUNNEL_LEVELS


def test_crop_images_get_about_the_view_s_pixel_count():
    from PIL import Image

    view = Image.new("RGB", SIZE)
    (crop,) = cropping.crop_images(view, [(100, 50, 226, 176)])
    assert abs(crop.width * crop.height - 448 * 252) < 448 + 252 and abs(crop.width - crop.height) <= 1


def test_layer_choice_default_fraction_and_range():
    assert resolve_layer(None, 36) == 22  # ViCrop's layer for Qwen2.5-VL-3B
    assert resolve_layer(None, 2) == 1 and resolve_layer("0.5", 4) == 2 and resolve_layer("3", 4) == 3
    with pytest.raises(ValueError, match="crop_layer 4 is out of range: the model has 4 decoder layers"):
        resolve_layer(4, 4)
    with pytest.raises(ValueError, match="out of range: a fraction of depth must lie in"):
        resolve_layer(1.5, 4)
    with pytest.raises(ValueError, match="layer index or a fraction"):
        resolve_layer("middle", 4)


# --- the model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    model, processor = load_vlm(tiny_model_dir, dtype="float32")  # its own copy: cropping swaps its attention
    return VLMPolicy(model, processor, max_new_tokens=6)


def odd_view(rows_cols, size=(117, 75)) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A dark view of odd size whose cell (r, c) of the tiny model's 3 x 4 merged grid is white."""
    W, H = size
    (r, c), cell_w, cell_h = rows_cols, W / 4, H / 3
    region = (int(np.ceil(c * cell_w)), int(np.ceil(r * cell_h)), int((c + 1) * cell_w), int((r + 1) * cell_h))
    image = np.full((H, W, 3), 20, np.uint8)
    image[region[1] : region[3], region[0] : region[2]] = 255
    return image, region


def chat_with(image: np.ndarray) -> EpisodeChat:
    chat = EpisodeChat("HOS", "Find the red clock.")
    chat.observe({"image": image, "heading": [0.0, 0.0]})
    return chat


@pytest.mark.parametrize("cell", [(1, 2), (0, 0), (2, 3)])
def test_map_cells_align_with_the_image_through_the_2x2_merge(policy, cell):
    image, region = odd_view(cell)
    inputs = policy.inputs([chat_with(image)])
    _, h, w = inputs["image_grid_thw"][0].tolist()
    assert (h // 2, w // 2) == (3, 4)  # 117 x 75 is resized to 112 x 84 pixels
    # The processor's patches come in groups of 4 (one 2x2 merge) per image token, row-major.
    brightness = inputs["pixel_values"].float().mean(1).reshape(-1, 4).mean(1)
    token = int(brightness.argmax())
    ids = inputs["input_ids"][0]
    start = int((ids == policy.model.config.vision_start_token_id).nonzero()[-1])
    one_hot = torch.zeros(1, ids.numel())
    one_hot[0, start + 1 + token] = 1.0
    (grid,) = cropping.view_maps(one_hot, inputs, policy.model.config)
    assert grid.shape == (3, 4) and np.unravel_index(grid.argmax(), grid.shape) == cell
    assert contains(crop_box(grid, (117, 75), base=30), *region)


def eager_maps(model, inputs, layer):
    """ViCrop's way: eager attention everywhere, the weights of every layer kept."""
    model.set_attn_implementation("eager")
    try:
        with torch.enable_grad():
            out = model(**inputs, output_attentions=True)
            weights = out.attentions[layer]
            log_likelihood = torch.log_softmax(out.logits[:, -1].float(), -1).max(-1).values.sum()
            (grad,) = torch.autograd.grad(log_likelihood, weights)
    finally:
        model.set_attn_implementation({"text_config": "panoseek_map"})
    return weights[:, :, -1].mean(1).detach(), (weights * grad.clamp(min=0))[:, :, -1].mean(1).detach()


@pytest.mark.parametrize("layer", [pytest.param(0, marks=pytest.mark.slow), 1])
def test_kernel_maps_equal_eager_attention(policy, layer):
    policy.crop_settings("rel-att", layer)
    rng = np.random.default_rng(layer)
    chats = [chat_with(rng.integers(0, 255, (63, 112, 3), dtype=np.uint8)),
             chat_with(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))]  # two lengths: left padding
    inputs = policy.inputs(chats)
    attention, grad_att = eager_maps(policy.model, inputs, layer)
    ours = cropping.last_token_maps(policy.model, inputs, layer)
    torch.testing.assert_close(ours, attention, atol=1e-4, rtol=0)
    ours_grad = cropping.last_token_maps(policy.model, inputs, layer, gradient=True)
    assert ours_grad.abs().max() > 0
    torch.testing.assert_close(ours_grad, grad_att, atol=1e-4, rtol=1e-4)
    assert all(p.grad is None for p in policy.model.parameters())  # no weight gradients were made


@pytest.mark.parametrize("method, images", [
    ("rel-att", 2),
    pytest.param("grad-att", 2, marks=pytest.mark.slow),
    pytest.param("funnel", 1 + cropping.FUNNEL_LEVELS, marks=pytest.mark.slow),
])
def test_crop_turn_on_the_tiny_model(policy, method, images):
    agents = [VLMAgent(policy, crop=method, crop_layer=1) for _ in range(2)]
    rng = np.random.default_rng(3)
    views = [rng.integers(0, 255, (63, 112, 3), dtype=np.uint8), rng.integers(0, 255, (75, 117, 3), dtype=np.uint8)]
    for agent in agents:
        agent.reset(TASK)
    replies = VLMAgent.act_batch(agents, [{"image": view, "heading": [0.0, 0.0]} for view in views])
    for agent, reply, view in zip(agents, replies, views):
        assert isinstance(reply, str) and agent.chat.turns[-1].reply == reply
        messages, pictures = agent.chat.messages()
        assert len(pictures) == images == sum(part["type"] == "image" for part in messages[0]["content"])
        assert len(agent.last_boxes) == images - 1
        for (x0, y0, x1, y1), crop in zip(agent.last_boxes, pictures[1:]):
            assert 0 <= x0 < x1 <= view.shape[1] and 0 <= y0 < y1 <= view.shape[0]
            assert abs(crop.width / crop.height - (x1 - x0) / (y1 - y0)) < 0.05
    alone = VLMAgent(policy, crop=method, crop_layer=1)
    alone.reset(TASK)
    assert alone.act({"image": views[1], "heading": [0.0, 0.0]}) == replies[1]  # batched = one at a time
    assert alone.last_boxes == agents[1].last_boxes


def test_default_crop_none_leaves_the_model_alone(tiny_model_dir):
    model, processor = load_vlm(tiny_model_dir, dtype="float32")
    agent = VLMAgent(VLMPolicy(model, processor, max_new_tokens=2))
    assert agent.crop is None and model.config.get_text_config()._attn_implementation == "sdpa"


def test_bad_crop_options_are_named(policy, monkeypatch):
    with pytest.raises(VLMError, match="crop must be one of"):
        VLMAgent(policy, crop="zoom")
    with pytest.raises(VLMError, match="crop_layer 2 is out of range: the model has 2 decoder layers"):
        VLMAgent(policy, crop="rel-att", crop_layer=2)
    with pytest.raises(VLMError, match="a fraction of depth must lie in"):
        VLMAgent(policy, crop="grad-att", crop_layer="1.5")
    plain = VLMPolicy(types.SimpleNamespace(config=policy.model.config), policy.processor)
    with pytest.raises(VLMError, match="needs a transformers model whose attention can be swapped"):
        VLMAgent(plain, crop="rel-att")
    monkeypatch.setattr(type(policy.model), "_can_set_attn_implementation", classmethod(lambda cls: False))
    with pytest.raises(VLMError, match="attention can be swapped.*Qwen2_5_VLForConditionalGeneration cannot"):
        VLMAgent(policy, crop="funnel")


def test_chat_carries_crops_after_their_view():
    from PIL import Image

    chat = EpisodeChat("HOS", "Find the red clock.", structure="hstar")
    with pytest.raises(RuntimeError, match="add_crops"):
        chat.add_crops([Image.new("RGB", (4, 4))])
    chat.observe({"image": np.zeros((6, 8, 3), np.uint8), "heading": [0.0, 0.0]})
    crop = Image.new("RGB", (5, 5), "white")
    chat.add_crops([crop])
    messages, images = chat.messages()
    parts = [part["type"] for part in messages[-1]["content"]]
    assert parts == ["text", "image", "image", "text"] and images[1] is crop
    chat.reply("x")
    with pytest.raises(RuntimeError, match="add_crops"):
        chat.add_crops([crop])


def test_per_head_maps_average_to_the_mean_map():
    from panoseek.kernels import attention_with_map

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, heads, 11, 8, generator=gen) for heads in (4, 2, 2))
    _, per_head = attention_with_map(q, k, v, map_rows=[-1, 3], reduce="none")
    _, mean = attention_with_map(q, k, v, map_rows=[-1, 3], reduce="mean")
    assert per_head.shape == (2, 4, 2, 11)
    torch.testing.assert_close(per_head.mean(1), mean, atol=1e-6, rtol=0)


def test_eval_style_crop_arguments(tiny_model_dir):
    from panoseek.agents.registry import make_agent

    agent = make_agent("vlm", model=str(tiny_model_dir), crop="grad-att", crop_layer="0.5", dtype="float32",
                       max_new_tokens=2)
    assert agent.crop == cropping.CropSettings("grad-att", 1)


def test_a_crop_layer_without_crop_is_one_clear_error(tiny_model_dir):
    with pytest.raises(VLMError, match="crop_layer=.* without crop"):
        VLMAgent(tiny_model_dir, crop_layer=1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_cuda_device_without_cuda_is_one_clear_error(tiny_model_dir):
    with pytest.raises(VLMError, match="no CUDA device"):
        load_vlm(tiny_model_dir, device="cuda")
