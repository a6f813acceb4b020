"""A tiny, randomly initialised Qwen2.5-VL model built offline, for tests, CI and CPU runs.

``build_tiny_model(out_dir)`` writes a folder with the same files and the same classes
as a real Qwen2.5-VL checkpoint (``config.json`` + safetensors weights, a byte-level
BPE tokenizer, ``preprocessor_config.json`` for the Qwen2-VL image processor, a chat
template), so :mod:`panoseek.agents.vlm` loads it through exactly the code path a GPU
user runs with ``Qwen2.5-VL-3B-Instruct``. Nothing is downloaded: the tokenizer is
trained here with the ``tokenizers`` library on the benchmark's own text (the prompts,
feedback lines, actions and generated instructions). The weights are random, so the
model writes noise; it exists to exercise the code, not to search.

Everything is seeded: the same ``seed`` and ``size`` give the same files.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

# The special tokens of Qwen2.5-VL's chat format and vision placeholders, in the order
# they get ids 0, 1, 2, ... (the config's token ids are read back from the tokenizer).
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_pad|>",
)

# Qwen2.5-VL's chat layout (ChatML with vision placeholders), written for this project:
# string or list content, image/video entries, and the generation prompt. Each assistant
# reply and its <|im_end|> sit inside {% generation %} markers, which render nothing at
# inference and let ``return_assistant_tokens_mask`` (TRL's ``assistant_only_loss``) find
# the reply tokens in training. (The newline after the marker is an expression because
# transformers renders templates with ``trim_blocks``, which drops a newline after a tag.)
CHAT_TEMPLATE = (
    "{% macro render(content) %}"
    "{% if content is string %}{{ content }}"
    "{% else %}{% for part in content %}"
    "{% if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% endmacro %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ render(message['content']) }}<|im_end|>{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ render(message['content']) }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinySize:
    """Dimensions of one tiny model size (text decoder and vision tower)."""

    vocab_size: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    mlp: int
    vision_hidden: int
    vision_depth: int
    vision_heads: int
    vision_mlp: int


SIZES = {
    "S": TinySize(2048, 64, 2, 4, 2, 128, 32, 2, 2, 64),
    "M": TinySize(4096, 256, 4, 8, 4, 768, 128, 4, 4, 256),
}

# Image-token budget written into the processor: at most 16 merged tokens per view
# (each token is a 28x28-pixel patch after the 2x2 merge), at least 4.
TINY_MAX_PIXELS = 28 * 28 * 16
TINY_MIN_PIXELS = 28 * 28 * 4

_COLOURS = ("red", "blue", "green", "yellow", "white", "black", "orange", "purple", "brown", "grey")
_OBJECTS = (
    "clock", "chair", "lamp", "bicycle", "door", "sign", "plant", "bench", "umbrella", "painting",
    "car", "bottle", "cup", "backpack", "trash can", "fire extinguisher", "television", "window",
)
_PLACES = (
    "gate", "exit", "stairs", "elevator", "platform", "kitchen", "restroom", "parking lot",
    "ticket office", "main entrance", "cafe", "bus stop", "crossing", "corridor",
)


def instruction_corpus() -> list[str]:
    """Generated object- and path-search instructions (the tokenizer's instruction vocabulary)."""
    hos = [f"Find the {colour} {name}." for colour, name in itertools.product(_COLOURS, _OBJECTS)]
    hos += [f"Look at the {name} next to the {other}." for name, other in zip(_OBJECTS, reversed(_OBJECTS))]
    hps = [f"Go to the {place}." for place in _PLACES]
    hps += [f"Walk to {place} {number}." for place, number in itertools.product(("gate", "platform"), range(1, 25))]
    hps += [f"Follow the signs to the {place}." for place in _PLACES]
    return hos + hps


def training_corpus() -> list[str]:
    """All text the tokenizer is trained on: prompts, feedback, replies, digits, instructions."""
    from panoseek.envs.prompts import feedback_message, task_prompt
    from panoseek.envs.protocol import PROMPT_FORMATS, format_action, format_reply

    instructions = instruction_corpus()
    texts = list(instructions)
    for kind, prompt_format in itertools.product(("HOS", "HPS"), PROMPT_FORMATS):
        texts += [task_prompt(kind, instruction, prompt_format) for instruction in instructions[::7]]
    for yaw, pitch in itertools.product(range(0, 360, 5), range(-90, 91, 10)):
        texts.append(feedback_message(True, yaw, pitch))
        texts.append(feedback_message(False, yaw, pitch, error="reply has no <answer> tag", done=pitch == 0))
    thought = "The target is probably to my left; I turn to look."
    for kind, (yaw, pitch) in itertools.product(("rotate", "submit"), itertools.product(range(-180, 360, 15), range(-90, 91, 15))):
        for prompt_format in PROMPT_FORMATS:
            action = format_action(kind, yaw, pitch)
            texts.append(format_reply(action, think=thought, observation=thought, prompt_format=prompt_format))
    texts += [str(number) for number in range(-360, 361)]
    return texts


def train_tokenizer(vocab_size: int):
    """A Qwen2-style byte-level BPE tokenizer trained on :func:`training_corpus`."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    # The same normaliser, pre-tokeniser and decoder as Qwen2Tokenizer, so the trained
    # vocabulary and merges drop into that class unchanged.
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(training_corpus(), trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(pair) if isinstance(pair, list) else tuple(pair.split(" ")) for pair in model["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.padding_side = "left"
    return tokenizer


def tiny_config(size: str, tokenizer):
    """A ``Qwen2_5_VLConfig`` with the dimensions of ``SIZES[size]`` and the tokenizer's ids."""
    from transformers import Qwen2_5_VLConfig

    dims = SIZES[size]
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    head_dim = dims.hidden // dims.heads
    # Multimodal RoPE splits each head's rotary half into (time, height, width) sections;
    # Qwen2.5-VL uses 1/4, 3/8, 3/8 of it.
    half = head_dim // 2
    mrope_section = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=dims.hidden,
        intermediate_size=dims.mlp,
        num_hidden_layers=dims.layers,
        num_attention_heads=dims.heads,
        num_key_value_heads=dims.kv_heads,
        max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope_section},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        depth=dims.vision_depth,
        hidden_size=dims.vision_hidden,
        intermediate_size=dims.vision_mlp,
        num_heads=dims.vision_heads,
        out_hidden_size=dims.hidden,
        fullatt_block_indexes=[dims.vision_depth - 1],
        window_size=112,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )


def build_tiny_model(
    out_dir: str | os.PathLike, size: str = "S", seed: int = 0, force: bool = False, max_pixels: int = TINY_MAX_PIXELS
) -> Path:
    """Write a random tiny Qwen2.5-VL model, tokenizer and processor files to ``out_dir``.

    ``max_pixels`` is the processor's pixel budget per view (a multiple of 28x28 pixels is
    one merged image token): 16 tokens by default; the trained tiny searcher allows 36.

    ``out_dir`` must be new or empty unless ``force``; even then only the files of the
    tiny model are overwritten and nothing else there is deleted. The files are written to
    a staging folder first and moved in at the end, because ``save_pretrained`` deletes
    weight shards it finds in its target folder.
    """
    if size not in SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; expected one of {sorted(SIZES)}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < TINY_MIN_PIXELS:
        raise ValueError(f"max_pixels must be an integer of at least {TINY_MIN_PIXELS}, got {max_pixels!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a folder")
    if out.is_dir() and not force and any(out.iterdir()):
        raise ValueError(
            f"--out {str(out)!r} is not empty; give a new or empty folder, or --force to overwrite "
            "the tiny model's own files there (other files are kept)"
        )
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".init-tiny-", dir=out) as staging:
        _write_tiny_model(Path(staging), size, seed, max_pixels)
        for file in sorted(Path(staging).iterdir()):
            os.replace(file, out / file.name)
    return out


def _write_tiny_model(out: Path, size: str, seed: int, max_pixels: int) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = train_tokenizer(SIZES[size].vocab_size)
    config = tiny_config(size, tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=config.text_config.eos_token_id,
        pad_token_id=config.text_config.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out)

    # The processor files are written part by part (the files a Qwen2_5_VLProcessor
    # saves), because building that object needs torchvision for its video half, which
    # this project does not require.
    Qwen2VLImageProcessorPil(min_pixels=TINY_MIN_PIXELS, max_pixels=max_pixels).save_pretrained(out)
    tokenizer._set_processor_class("Qwen2_5_VLProcessor")
    tokenizer.save_pretrained(out)
    (out / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen2_5_VLProcessor"}, indent=2) + "\n")
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
