"""The chat the language agent sends: prompt snapshots, view order, the history window.

Snapshots live in ``tests/snapshots/``; after an intended prompt change, rewrite them
with ``PANOSEEK_UPDATE_SNAPSHOTS=1 pytest tests/test_vlm_chat.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from panoseek.agents.chat import EpisodeChat
from panoseek.agents.vlm import VLMAgent, VLMPolicy, load_vlm
from panoseek.envs.protocol import PROMPT_FORMATS

SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    model, processor = load_vlm(tiny_model_dir, dtype="float32")
    return VLMPolicy(model, processor, max_new_tokens=4)


def view(value: int) -> np.ndarray:
    """A distinguishable view: a constant colour per turn."""
    return np.full((252, 448, 3), value, dtype=np.uint8)


def played_chat(prompt_format: str, turns: int = 3, history: int = 2) -> EpisodeChat:
    chat = EpisodeChat("HOS", "Find the red clock.", prompt_format, history)
    for turn in range(turns):
        feedback = "" if turn == 0 else f"The action was carried out; your current direction (yaw,pitch) is ({30 * turn},0)."
        chat.observe({"image": view(40 * turn), "heading": [30.0 * turn, 0.0], "feedback": feedback})
        if turn < turns - 1:
            chat.reply(f"<think>turn {turn}</think><answer>rotate(30,0)</answer>")
    return chat


@pytest.mark.parametrize("prompt_format", PROMPT_FORMATS)
def test_prompt_snapshot(policy, prompt_format):
    messages, _ = played_chat(prompt_format).messages()
    text = policy.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    snapshot = SNAPSHOTS / f"vlm_chat_{prompt_format}.txt"
    if os.environ.get("PANOSEEK_UPDATE_SNAPSHOTS") == "1":
        snapshot.parent.mkdir(exist_ok=True)
        snapshot.write_text(text)
    assert text == snapshot.read_text(), f"prompt changed; see {snapshot}"


def test_window_keeps_the_last_views_in_order_and_names_the_dropped_ones():
    chat = played_chat("free_think", turns=5, history=2)
    messages, images = chat.messages()
    assert [image.getpixel((0, 0))[0] for image in images] == [120, 160]  # turns 3 and 4, oldest first
    users = [message for message in messages if message["role"] == "user"]
    kinds = [[part["type"] for part in message["content"]] for message in users]
    assert kinds[0] == ["text", "text", "text"]  # prompt, dropped view, feedback
    assert all(entry == ["text", "text"] for entry in kinds[1:3])
    assert all(entry == ["image", "text"] for entry in kinds[3:])
    assert "where your current direction (yaw,pitch) is (60,0)" in users[2]["content"][0]["text"]
    assert [message["role"] for message in messages] == ["user", "assistant"] * 4 + ["user"]


def test_short_episode_shows_every_view():
    _, images = played_chat("no_think", turns=2, history=3).messages()
    assert [image.getpixel((0, 0))[0] for image in images] == [0, 40]


def test_model_receives_the_window_views_in_order(policy):
    """The pixels given to generate() are the last ``history`` views, oldest first."""
    agent = VLMAgent(policy, history=2)
    agent.reset({"kind": "HPS", "instruction": "Go to gate 12.", "seed": 0})
    seen = []
    generate = policy.model.generate

    def spy(**inputs):
        seen.append(inputs)
        return generate(**inputs)

    policy.model.generate = spy
    try:
        for turn in range(4):
            agent.act({"image": view(50 * turn), "heading": [0.0, 0.0], "feedback": ""})
    finally:
        del policy.model.generate
    expected = policy.processor.image_processor(
        images=[Image.fromarray(view(100)), Image.fromarray(view(150))], return_tensors="pt"
    )
    assert torch.equal(seen[-1]["pixel_values"], expected["pixel_values"])
    image_tokens = (seen[-1]["input_ids"] == policy.model.config.image_token_id).sum().item()
    per_view = (seen[-1]["image_grid_thw"].prod(dim=1) // 4).tolist()  # 2x2 patches merge into one token
    assert image_tokens == sum(per_view) and all(0 < count <= 16 for count in per_view)  # the tiny model's budget
    assert [len(inputs["image_grid_thw"]) for inputs in seen] == [1, 2, 2, 2]


def test_history_must_be_positive():
    with pytest.raises(ValueError, match="history must be a positive number of views, got 0"):
        EpisodeChat("HOS", "Find the red clock.", history=0)


def test_reply_and_observe_must_alternate():
    chat = played_chat("free_think", turns=1)
    with pytest.raises(RuntimeError, match="observe"):
        chat.observe({"image": view(0), "heading": [0.0, 0.0]})


def test_a_bad_view_is_named():
    chat = EpisodeChat("HPS", "Go to gate 12.")
    with pytest.raises(ValueError, match=r"observation 'image' must be an \(H, W, 3\) uint8 array, got float64"):
        chat.observe({"image": np.zeros((4, 4, 3)), "heading": [0.0, 0.0]})


def test_hstar_structure_repeats_instruction_and_format_and_names_the_action_read(policy):
    chat = EpisodeChat("HOS", "Find the red clock.", "free_think", history=1, structure="hstar")
    chat.observe({"image": view(10), "heading": [0.0, 0.0], "feedback": ""})
    chat.reply("<think>left</think><answer>rotate(-30,0)</answer>")
    chat.observe({"image": view(20), "heading": [330.0, 0.0], "feedback": "your current direction (yaw,pitch) is (330,0)"})
    messages, images = chat.messages()
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    system = messages[0]["content"][0]["text"]
    assert "Example" in system and "Round 4" in system
    users = [" ".join(part.get("text", "<image>") for part in m["content"]) for m in messages if m["role"] == "user"]
    assert all("Instruction: Find the red clock." in text and "<think>...</think><answer>...</answer>" in text for text in users)
    assert "The action read from your reply: rotate(-30,0)." in users[1] and "(330,0)" in users[1]
    assert "[earlier view" in users[0] and len(images) == 1  # history 1: only the last view is an image
    text = policy.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.count("<|image_pad|>") == 1 and text.startswith("<|im_start|>system")


def test_vlm_agent_takes_the_hstar_structure_under_the_hstar_protocol(policy):
    from panoseek.agents.vlm import VLMAgent

    agent = VLMAgent(policy)
    agent.reset({"kind": "HOS", "instruction": "Find it.", "seed": 0, "strict": "hstar"})
    assert agent.chat.structure == "hstar"
    agent.reset({"kind": "HOS", "instruction": "Find it.", "seed": 0, "strict": True})
    assert agent.chat.structure == "panoseek"
