"""Search agents driven by any Hugging Face image-text-to-text model from a local folder.

:func:`load_vlm` loads ``AutoModelForImageTextToText`` + ``AutoProcessor`` (never
downloading); :class:`VLMPolicy` answers a batch of episode chats with one
``generate`` call (left padding, greedy or sampled); :class:`VLMAgent` is the
one-episode agent of :mod:`panoseek.agents.base`, registered as ``vlm``::

    panoseek eval --agent vlm --model /models/Qwen2.5-VL-3B-Instruct --suite synth:test

With ``crop`` (``--agent-arg crop=rel-att``) each turn first looks where the model attends
in the current view (:mod:`panoseek.agents.cropping`) and sends a crop of that place as
a further image of the same turn (:meth:`VLMPolicy.crop_views`). With ``zoom`` as well
(``--agent-arg zoom=true``, in a ``panoseek eval --zoom`` run) the closer look is a zoom
view rendered from the panorama instead of a crop (:mod:`panoseek.agents.zooming`).

The reply text is returned to the environment as it is: the environment's protocol
parser judges it, so an unparseable reply is an invalid action, never a crash.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from panoseek.agents import cropping, zooming
from panoseek.agents.chat import STRUCTURES, EpisodeChat
from panoseek.agents.registry import AgentError
from panoseek.envs.protocol import PROMPT_FORMATS, ParsedAction, parse_action

DTYPES = ("auto", "float32", "bfloat16", "float16")


class VLMError(AgentError):
    """A model folder or option that cannot be used; the message names the path or value."""


# Files that hold a tokenizer's vocabulary (without one, transformers builds an empty tokenizer).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def _check_model_dir(path: str | os.PathLike, *, weights: bool = False, processor: bool = False) -> Path:
    """The local model folder at ``path``, checked for what loading its weights / processor needs.

    Checked here because transformers reports a damaged folder with a traceback from deep
    inside it, or not at all (no tokenizer files give an empty tokenizer). The weights
    checked are those transformers loads, ``model.safetensors`` or else the shards of
    ``model.safetensors.index.json``; only their headers are read.
    """
    folder = Path(path).expanduser()
    where = f"model folder {str(folder)!r}"
    if not folder.is_dir():
        raise VLMError(f"model path {str(folder)!r} is not a folder (give a local model folder; nothing is downloaded)")
    if not (folder / "config.json").is_file():
        raise VLMError(f"model path {str(folder)!r} is not a model folder: it has no config.json")
    if weights:
        from safetensors import SafetensorError, safe_open

        single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
        if single.is_file():
            files = [single]
        elif index.is_file():
            try:
                files = [folder / shard for shard in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
                raise VLMError(f"{where}: {index.name} is not a readable shard index ({error!r})") from None
        else:
            files = []  # other weight formats: transformers names what it does not find
        for file in files:
            try:
                with safe_open(str(file), framework="pt"):
                    pass
            except (SafetensorError, OSError) as error:
                raise VLMError(f"{where}: weights file {file.name} is missing, truncated or corrupt ({error})") from None
    if processor:
        if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
            raise VLMError(f"{where} has no tokenizer files (one of {', '.join(_TOKENIZER_FILES)})")
        try:
            bundled = "image_processor" in json.loads((folder / "processor_config.json").read_text())
        except (OSError, ValueError, TypeError):
            bundled = False
        if not (bundled or (folder / "preprocessor_config.json").is_file()):
            raise VLMError(f"{where} has no image processor files (preprocessor_config.json)")
    return folder


def load_processor(path: str | os.PathLike, max_pixels: int | None = None):
    """The model's processor, left-padding, with the image budget ``max_pixels`` if given.

    Multimodal processors such as Qwen2.5-VL's also hold a video processor, which
    transformers builds only when torchvision is installed. Without torchvision the
    same processor class is loaded without its video half (views are still images), so
    CPU machines without a torchvision build load the same files the same way.
    """
    from transformers import AutoProcessor
    from transformers.utils import is_torchvision_available

    folder = _check_model_dir(path, processor=True)
    # Qwen-family image processors take their pixel budget at load time (their model
    # cards recommend exactly this); other families have their own image-size options.
    kwargs: dict[str, Any] = {"local_files_only": True}
    if max_pixels is not None:
        if int(max_pixels) < 28 * 28:
            raise VLMError(f"max_pixels must be at least {28 * 28} (one 28x28 patch), got {max_pixels!r}")
        kwargs["max_pixels"] = int(max_pixels)
        kwargs["min_pixels"] = min(56 * 56, int(max_pixels))
    try:
        processor_class = AutoProcessor if is_torchvision_available() else _image_only_processor_class(folder)
        processor = processor_class.from_pretrained(folder, **kwargs)
    except VLMError:
        raise
    except (OSError, ValueError, TypeError) as error:
        raise VLMError(f"cannot load a processor from {str(folder)!r}: {error}") from error
    processor.tokenizer.padding_side = "left"
    return processor


def _image_only_processor_class(folder: Path):
    """The folder's processor class, narrowed to image processor + tokenizer."""
    import inspect

    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    name = None
    for file_name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        file = folder / file_name
        if file.is_file():
            name = json.loads(file.read_text()).get("processor_class") or name
            if name:
                break
    if name and not hasattr(transformers, name):
        raise VLMError(f"model path {str(folder)!r} names processor class {name!r}, which transformers does not have")
    base = getattr(transformers, name) if name else PROCESSOR_MAPPING[type(AutoConfig.from_pretrained(folder))]
    parameters = inspect.signature(base.__init__).parameters
    if "video_processor" not in parameters:
        return base

    class ImageOnlyProcessor(base):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(
                image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                chat_template=chat_template, **kwargs,
            )

    # Keep the real class name, so a saved copy of the processor names the real class.
    ImageOnlyProcessor.__name__ = ImageOnlyProcessor.__qualname__ = base.__name__
    return ImageOnlyProcessor


def load_vlm(path: str | os.PathLike, *, dtype: str = "auto", device: str = "cpu", max_pixels: int | None = None):
    """Load ``(model, processor)`` from a local folder; ``device="auto"`` spreads over GPUs."""
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForImageTextToText

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = _check_model_dir(path, weights=True, processor=True)
    if dtype not in DTYPES:
        raise VLMError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise VLMError(f"device {device!r}: this PyTorch build sees no CUDA device (give device=cpu)")
    placement = {"device_map": "auto"} if device == "auto" else {}
    try:
        model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch_dtype, local_files_only=True, **placement)
    except (OSError, ValueError, SafetensorError) as error:
        raise VLMError(f"cannot load an image-text-to-text model from {str(folder)!r}: {error}") from error
    from panoseek.agents.visual_filter import FILTER_CONFIG, VisualFilterError, load_visual_filter

    if (folder / FILTER_CONFIG).is_file():  # a codebook filter trained with the model (agents/visual_filter.py)
        try:
            load_visual_filter(model, folder)
        except VisualFilterError as error:
            raise VLMError(str(error)) from None
    if device != "auto":
        model = model.to(device)
    return model.eval(), load_processor(folder, max_pixels)


class VLMPolicy:
    """A loaded model and processor answering many episode chats per ``generate`` call."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        sample: bool = False,
        temperature: float = 1.0,
        max_new_tokens: int = 256,
    ) -> None:
        if int(max_new_tokens) < 1:
            raise VLMError(f"max_new_tokens must be at least 1, got {max_new_tokens!r}")
        if sample and not float(temperature) > 0:
            raise VLMError(f"temperature must be positive when sampling, got {temperature!r}")
        self.model = model
        self.processor = processor
        self.sample = bool(sample)
        self.temperature = float(temperature)
        self.max_new_tokens = int(max_new_tokens)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        dtype: str = "auto",
        device: str = "cpu",
        max_pixels: int | None = None,
        **generation: Any,
    ) -> "VLMPolicy":
        model, processor = load_vlm(path, dtype=dtype, device=device, max_pixels=max_pixels)
        return cls(model, processor, **generation)

    def inputs(self, chats: Sequence[EpisodeChat]):
        """Tokenised, left-padded model inputs for the chats' current state (one row each)."""
        texts, images = [], []
        for chat in chats:
            messages, views = chat.messages()
            texts.append(self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
            images += views
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        return inputs.to(self.model.device)

    def crop_settings(self, crop: str, layer: int | float | str | None = None) -> cropping.CropSettings | None:
        """Check that this model can crop and switch its decoder to ``panoseek_map`` attention.

        That attention is SDPA except inside an active ``AttentionMaps``, so replies without
        cropping stay as they were (under SDPA). Returns None for ``crop="none"``, which
        leaves the model untouched.
        """
        if crop not in cropping.CROP_METHODS:
            raise VLMError(f"crop must be one of {cropping.CROP_METHODS}, got {crop!r}")
        if crop == "none":
            if layer is not None:
                raise VLMError(f"crop_layer={layer!r} is given without crop (crop=rel-att, grad-att or funnel)")
            return None
        import panoseek.kernels.hf_attention  # noqa: F401  (registers "panoseek_map")

        model, name = self.model, type(self.model).__name__
        config = getattr(model, "config", None)
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else None
        can_set = getattr(model, "_can_set_attn_implementation", lambda: True)
        if not hasattr(model, "set_attn_implementation") or text_config is None or not can_set():
            raise VLMError(f"crop={crop!r} needs a transformers model whose attention can be swapped "
                           f"(set_attn_implementation); {name} cannot")
        needed = ("vision_start_token_id", "vision_end_token_id", "vision_config")
        if any(getattr(config, field, None) is None for field in needed):
            raise VLMError(f"crop={crop!r} needs a Qwen2-VL-style model (config {', '.join(needed)}); {name} has not")
        try:
            settings = cropping.CropSettings(crop, cropping.resolve_layer(layer, int(text_config.num_hidden_layers)))
        except ValueError as error:
            raise VLMError(str(error)) from None
        try:
            model.set_attn_implementation({"text_config": "panoseek_map"})
        except (ValueError, ImportError, KeyError) as error:
            raise VLMError(f"crop={crop!r}: {name} cannot run panoseek_map attention ({error})") from None
        if text_config._attn_implementation != "panoseek_map":
            raise VLMError(f"crop={crop!r}: {name} did not take panoseek_map attention (it runs "
                           f"{text_config._attn_implementation!r}); its attention interface cannot be swapped")
        return settings

    def crop_views(self, chats: Sequence[EpisodeChat], crop: cropping.CropSettings) -> list[list[cropping.Box]]:
        """Prefill -> map -> crop for each chat's current view: attaches the crops of
        :meth:`crop_boxes` to the chats and returns their boxes."""
        all_boxes = self.crop_boxes(chats, crop)
        for chat, boxes in zip(chats, all_boxes):
            chat.add_crops(cropping.crop_images(chat.turns[-1].image, boxes))
        return all_boxes

    def crop_boxes(self, chats: Sequence[EpisodeChat], crop: cropping.CropSettings) -> list[list[cropping.Box]]:
        """Prefill -> map -> boxes for each chat's current view (one batched forward, two for
        the relative maps): the crop boxes in view pixels, largest first (several for funnel)."""
        inputs = self.inputs(chats)
        maps = cropping.view_maps(
            cropping.last_token_maps(self.model, inputs, crop.layer, gradient=crop.method == "grad-att"),
            inputs, self.model.config,
        )
        views = [chat.turns[-1].image for chat in chats]
        if crop.method in ("rel-att", "funnel"):
            generic = self._generic_inputs(views)
            generic_maps = cropping.view_maps(cropping.last_token_maps(self.model, generic, crop.layer), generic, self.model.config)
            maps = [cropping.relative_map(q, g) for q, g in zip(maps, generic_maps)]
        if crop.method == "funnel":
            return [cropping.funnel_boxes(att, view.size) for view, att in zip(views, maps)]
        return [[cropping.crop_box(att, view.size)] for view, att in zip(views, maps)]

    def _generic_inputs(self, views: Sequence[Any]):
        """One-turn chats asking :data:`~panoseek.agents.cropping.GENERIC_PROMPT` about each view."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": cropping.GENERIC_PROMPT}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = self.processor(text=[text] * len(views), images=list(views), padding=True, return_tensors="pt")
        return inputs.to(self.model.device)

    def generate(self, chats: Sequence[EpisodeChat], seed: int | None = None) -> list[str]:
        """One reply per chat, from a single batched ``generate`` call."""
        import torch

        inputs = self.inputs(chats)
        options: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.sample}
        if self.sample:
            options["temperature"] = self.temperature
            if seed is not None:
                torch.manual_seed(seed)
        else:  # greedy: clear sampling defaults a checkpoint's generation_config may carry
            options.update(temperature=None, top_p=None, top_k=None)
        tokenizer = self.processor.tokenizer
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                **options,
                pad_token_id=tokenizer.pad_token_id,
                stop_strings=["</answer>"],
                tokenizer=tokenizer,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        if value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if value.strip().lower() in ("0", "false", "no", "off", ""):
            return False
        raise VLMError(f"expected a true/false value, got {value!r}")
    return bool(value)


class VLMAgent:
    """Multi-turn search agent over an image-text-to-text model (the built-in agent ``vlm``).

    Args:
        model: a local model folder (loaded once per process and shared by every agent
            built with the same options, since the runner builds one agent per episode),
            or an already loaded :class:`VLMPolicy`.
        dtype, device, max_pixels: how to load the folder (see :func:`load_vlm`);
            ``max_pixels`` caps the pixels of each view as the processor resizes it,
            hence its image tokens (Qwen-family processors).
            These three are ignored when ``model`` is a loaded policy.
        history: how many recent views are sent as images (older ones become text).
        prompt_format: ``free_think``, ``no_think`` or ``grounding``.
        chat: the chat structure (:class:`EpisodeChat`): ``panoseek``, ``compact`` (what
            models trained by ``panoseek train recipe tiny`` learnt) or ``hstar``; by
            default ``hstar`` under the H* protocol, else ``panoseek``.
        sample, temperature, max_new_tokens: generation (greedy unless ``sample``).
        crop: ``none`` (default), ``rel-att``, ``grad-att`` or ``funnel``: attention-guided
            crops of each view, sent with it (:mod:`panoseek.agents.cropping`).
        crop_layer: the decoder layer whose attention is read: an index, or a fraction of
            the depth in (0, 1); default 0.6 of the depth (ViCrop's 22 of 36 layers).
        turns_left: end every user turn with how many turns of the budget are left
            (``task_info["max_turns"]``; models trained on ``panoseek data experts --turns-left``
            data); not with the ``hstar`` chat.
        zoom: instead of sending crops, zoom toward the crop boxes (the protocol's zoom
            action, so only in runs that allow it) and send the zoom views with the view.
    """

    def __init__(
        self,
        model: str | os.PathLike | VLMPolicy,
        *,
        dtype: str = "auto",
        device: str = "cpu",
        max_pixels: int | None = None,
        history: int = 2,
        prompt_format: str = "free_think",
        chat: str | None = None,
        sample: bool = False,
        temperature: float = 1.0,
        max_new_tokens: int = 256,
        crop: str = "none",
        crop_layer: int | float | str | None = None,
        turns_left: bool | str = False,
        zoom: bool | str = False,
    ) -> None:
        if prompt_format not in PROMPT_FORMATS:
            raise VLMError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
        if chat is not None and chat not in STRUCTURES:
            raise VLMError(f"chat must be one of {STRUCTURES}, got {chat!r}")
        self.turns_left = _as_bool(turns_left)
        if self.turns_left and chat == "hstar":
            raise VLMError("turns_left=true is not for chat=hstar (H*'s prompts are fixed)")
        if isinstance(model, VLMPolicy):
            self.policy = model
        else:
            self.policy = shared_policy(
                str(Path(model).expanduser().resolve()),
                dtype=dtype,
                device=device,
                max_pixels=None if max_pixels is None else int(max_pixels),
                sample=_as_bool(sample),
                temperature=float(temperature),
                max_new_tokens=int(max_new_tokens),
            )
        self.crop = self.policy.crop_settings(crop, crop_layer)
        self.zoom = _as_bool(zoom)
        if self.zoom and self.crop is None:
            raise VLMError("zoom=True needs a crop method to find where to zoom (crop=rel-att, grad-att or funnel)")
        self.zoom_state: zooming.ZoomState | None = None
        self.history = int(history)
        self.prompt_format = prompt_format
        self.structure = chat
        self.chat: EpisodeChat | None = None
        self.last_boxes: list[cropping.Box] = []  # the last turn's crop (or zoom) boxes (view pixels), for logs
        self.seed = 0
        self.last_action: ParsedAction | None = None  # the reply as the protocol reads it, for logs

    def reset(self, task_info: dict[str, Any]) -> None:
        # Under the H* protocol (``panoseek eval --preset hstar``) the chat takes H*'s structure too.
        structure = self.structure or ("hstar" if task_info.get("strict") == "hstar" else "panoseek")
        if self.turns_left and structure == "hstar":
            raise VLMError("turns_left=true is not for the hstar chat (the default under --preset hstar); "
                           "give chat=panoseek or chat=compact")
        max_turns = int(task_info["max_turns"]) if self.turns_left else None
        self.chat = EpisodeChat(task_info["kind"], task_info["instruction"], self.prompt_format, self.history, structure,
                                max_turns)
        self.seed = int(task_info.get("seed", 0))
        if self.zoom and "zooms_per_turn" not in task_info:
            raise VLMError("zoom=True needs a run that allows the zoom action (panoseek eval --zoom); this one does not")
        self.zoom_state = zooming.ZoomState(task_info["zooms_per_turn"], task_info["fov_deg"]) if self.zoom else None

    def act(self, observation: dict[str, Any]) -> str | dict[str, Any]:
        return VLMAgent.act_batch([self], [observation])[0]

    @staticmethod
    def act_batch(agents: Sequence["VLMAgent"], observations: Sequence[dict[str, Any]]) -> list[str | dict[str, Any]]:
        """One reply (or, for zooming agents, zoom action) per agent; agents sharing a policy (and
        crop settings) are answered by one ``generate`` call, after one batched crop step when
        they crop (zooming agents: :func:`zooming.next_zooms`, then those due a reply).

        Greedy replies equal one-at-a-time ones. When sampling, a batch draws from one
        generator seeded by its first agent, so sampled replies depend on the batch.

        A call that raises (say, out of memory in ``generate``) leaves every agent's chat and
        zoom state as they were, so the next turn goes on from the last answered one.
        """
        if any(agent.chat is None for agent in agents):
            raise RuntimeError("act() before reset()")
        saved = [_AgentState.of(agent) for agent in agents]
        try:
            return VLMAgent._answer(agents, observations)
        except BaseException:
            for state in saved:
                state.restore()
            raise

    @staticmethod
    def _answer(agents: Sequence["VLMAgent"], observations: Sequence[dict[str, Any]]) -> list[str | dict[str, Any]]:
        """:meth:`act_batch` without the restore on failure."""
        replies: list[str | dict[str, Any]] = [""] * len(agents)
        by_policy: dict[tuple, list[int]] = {}
        for index, agent in enumerate(agents):
            if agent.zoom_state is None:
                agent.chat.observe(observations[index])
        zooms = zooming.next_zooms(agents, observations)
        for index, agent in enumerate(agents):
            if index in zooms:
                replies[index] = zooms[index]
            else:
                by_policy.setdefault((id(agent.policy), agent.crop, agent.zoom), []).append(index)
        for indices in by_policy.values():
            first = agents[indices[0]]
            chats = [agents[i].chat for i in indices]
            if first.crop is not None and not first.zoom:
                for index, boxes in zip(indices, first.policy.crop_views(chats, first.crop)):
                    agents[index].last_boxes = boxes
            outputs = first.policy.generate(chats, seed=first.seed + len(first.chat.turns))
            for index, reply in zip(indices, outputs):
                agents[index].chat.reply(reply)
                agents[index].last_action = parse_action(reply, prompt_format=agents[index].prompt_format)
                replies[index] = reply
        return replies


@dataclass
class _AgentState:
    """What one ``act_batch`` call may change in an agent: its chat's last turn and zoom state."""

    agent: VLMAgent
    turns: int
    last: Any  # the chat's last turn object (or None) and its reply and crops before the call
    reply: str | None
    crops: list
    zoom: zooming.ZoomState | None

    @classmethod
    def of(cls, agent: VLMAgent) -> "_AgentState":
        turns = agent.chat.turns
        last = turns[-1] if turns else None
        zoom = agent.zoom_state
        return cls(agent, len(turns), last, None if last is None else last.reply, [] if last is None else list(last.crops),
                   None if zoom is None else replace(zoom, queued=list(zoom.queued)))

    def restore(self) -> None:
        del self.agent.chat.turns[self.turns:]
        if self.last is not None:
            self.last.reply, self.last.crops = self.reply, self.crops
        self.agent.zoom_state = self.zoom


@functools.lru_cache(maxsize=2)
def shared_policy(path: str, **options: Any) -> VLMPolicy:
    """The policy of a model folder with these options, loaded once per process."""
    return VLMPolicy.from_pretrained(path, **options)
