"""A small recurrent actor-critic over views and instructions, for PPO (``training/ppo.py``).

Per turn the policy sees what the agent contract gives: the view, the instruction, the
heading's pitch, the turn count and its own previous action. Architecture:

* **View**: a three-layer CNN over the ``view_size`` RGB view (128x72 by default):
  ``cnn="nature"`` (Nature-DQN shape, narrower: 8x8 stride 4 first) or ``cnn="fine"``
  (a 5x5 stride-2 layer, two 3x3 stride-2 layers and a 3x3 stride-1 layer, 32-64
  channels: 9x16 cells in the last map at 128x72 instead of 5x12, for small targets). Its
  last feature map is modulated (FiLM) by the instruction, so the visual features are
  task-conditioned; then a linear layer. With ``spatial_attention`` the instruction also
  queries that map: a softmax over its cells of the dot product with a learned
  projection of the instruction gives the attended features, the best cell's score and
  the attention's mean cell position, so "is it here, and roughly where" is close to a
  linear read.
* **Instruction**: :class:`WordTokenizer` (lower-case words, numbers digit by digit,
  vocabulary from the training suite's instructions, sorted: deterministic) and a mean
  of learned word embeddings.
* **Joint embedding**: view features, instruction embedding, an embedding of the
  previous action ("none" at the first turn), pitch / 90 and turn / max_turns, mixed by
  a linear layer; optionally squeezed through the codebook bottleneck
  (:class:`~panoseek.agents.codebook.CodebookBottleneck`), as in Embodied-Codebook.
* **Memory and heads**: a one-layer GRU (its state reset at every episode start), a
  linear actor over the discrete rotations and a linear critic. With
  ``last_turn_submits`` the actor's only action on the last turn of the budget is submit
  (a rule any player follows: an episode that never submits fails), so no sampled
  episode is lost to the turn limit.
* **Target head** (``target_head``, training only): a linear layer on the GRU output
  that predicts whether the target is in view and, if so, its offset from the view's
  centre, trained on privileged labels by an auxiliary loss (:meth:`target_loss`) so
  that perception is learned from a dense signal; acting never reads it.

:func:`policy_checkpoint` and :func:`load_policy` are the one checkpoint format (the
training checkpoint embeds it; the ``ppo`` agent reads it); a checkpoint that does not
fit is refused naming the field.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from panoseek.agents.codebook import CodebookBottleneck

CHECKPOINT_FORMAT = "panoseek-ppo-policy/1"
PAD, UNKNOWN = "<pad>", "<unk>"
MIN_VIEW = 36  # the smallest view side the three convolutions accept
_WORD = re.compile(r"[a-z]+|[0-9]")


class PolicyCheckpointError(ValueError):
    """A policy checkpoint that cannot be used; the message names the file and field."""


class WordTokenizer:
    """Words of an instruction as vocabulary indices (0 padding, 1 unknown)."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.vocabulary = tuple(vocabulary)
        if self.vocabulary[:2] != (PAD, UNKNOWN):
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNKNOWN!r}, got {self.vocabulary[:2]!r}")
        self._index = {word: i for i, word in enumerate(self.vocabulary)}
        self._encoded: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "WordTokenizer":
        """The sorted vocabulary of all words in ``texts``."""
        words = {word for text in texts for word in _WORD.findall(text.lower())}
        return cls((PAD, UNKNOWN, *sorted(words)))

    def encode(self, text: str) -> tuple[int, ...]:
        """Indices of the words of ``text`` (at least one: an empty text is one unknown word)."""
        if text not in self._encoded:
            self._encoded[text] = tuple(self._index.get(w, 1) for w in _WORD.findall(text.lower())) or (1,)
        return self._encoded[text]

    def batch(self, texts: Sequence[str]) -> torch.Tensor:
        """(B, L) indices, padded with 0 to the longest text."""
        encoded = [self.encode(text) for text in texts]
        out = torch.zeros(len(encoded), max(len(e) for e in encoded), dtype=torch.long)
        for row, ids in enumerate(encoded):
            out[row, : len(ids)] = torch.tensor(ids)
        return out


@dataclass(frozen=True)
class PolicyConfig:
    """Everything that shapes a policy; stored in its checkpoint."""

    vocabulary: tuple[str, ...]
    action_names: tuple[str, ...]  # DiscreteRotations' action set
    step_deg: float = 30.0
    big_step_deg: float | None = 90.0
    view_size: tuple[int, int] = (128, 72)  # (width, height) of the policy's input view
    codebook: bool = False
    hidden_size: int = 128
    word_dim: int = 32
    codebook_size: int = 256
    codebook_dim: int = 10
    codebook_dropout: float = 0.1
    last_turn_submits: bool = False  # on the budget's last turn the only action is submit
    target_head: bool = False  # the auxiliary in-view / offset head (training signal only)
    cnn: str = "nature"  # "nature" or "fine" (see the module doc)
    spatial_attention: bool = False  # the instruction queries the CNN's last map (see the module doc)


CNNS = ("nature", "fine")


def _cnn(kind: str) -> nn.Sequential:
    """The view encoder named by ``PolicyConfig.cnn``."""
    if kind == "nature":
        return nn.Sequential(
            _layer(nn.Conv2d(3, 16, 8, stride=4)), nn.ReLU(),
            _layer(nn.Conv2d(16, 32, 4, stride=2)), nn.ReLU(),
            _layer(nn.Conv2d(32, 32, 3, stride=1)), nn.ReLU(),
        )
    if kind == "fine":
        return nn.Sequential(
            _layer(nn.Conv2d(3, 32, 5, stride=2, padding=2)), nn.ReLU(),
            _layer(nn.Conv2d(32, 64, 3, stride=2, padding=1)), nn.ReLU(),
            _layer(nn.Conv2d(64, 64, 3, stride=2, padding=1)), nn.ReLU(),
            _layer(nn.Conv2d(64, 32, 3, stride=1, padding=1)), nn.ReLU(),
        )
    raise ValueError(f"cnn must be one of {CNNS}, got {kind!r}")


def _layer(layer: nn.Module, std: float = math.sqrt(2)) -> nn.Module:
    """Orthogonal weights and zero biases, as CleanRL initialises its PPO networks."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, 0.0)
    return layer


class SearchPolicy(nn.Module):
    """Recurrent actor-critic (see the module docstring)."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = WordTokenizer(config.vocabulary)
        hidden, n_actions = config.hidden_size, len(config.action_names)
        self.words = nn.EmbeddingBag(len(config.vocabulary), config.word_dim, mode="mean", padding_idx=0)
        self.cnn = _cnn(config.cnn)
        width, height = config.view_size
        if min(width, height) < MIN_VIEW:
            raise ValueError(f"view_size {tuple(config.view_size)} is too small for the policy's CNN "
                             f"(at least {MIN_VIEW} pixels each way)")
        with torch.no_grad():
            maps = self.cnn(torch.zeros(1, 3, height, width))
        self.film = nn.Linear(config.word_dim, 2 * maps.shape[1])  # per-channel scale and shift
        self.visual = nn.Sequential(nn.Flatten(), _layer(nn.Linear(maps[0].numel(), hidden)), nn.ReLU())
        channels, cells_y, cells_x = maps.shape[1:]
        self.query = nn.Linear(config.word_dim, channels) if config.spatial_attention else None
        if self.query is not None:  # cell centres in [-1, 1], x right and y up, for the attention's mean position
            xs = torch.linspace(-1.0, 1.0, cells_x) if cells_x > 1 else torch.zeros(1)
            ys = torch.linspace(1.0, -1.0, cells_y) if cells_y > 1 else torch.zeros(1)
            self.register_buffer("cell_xy", torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2),
                                 persistent=False)
        attended = channels + 3 if self.query is not None else 0
        self.previous = nn.Embedding(n_actions + 1, 16)  # index n_actions: no previous action
        self.joint = _layer(nn.Linear(hidden + attended + config.word_dim + 16 + 2, hidden))
        self.codebook = (
            CodebookBottleneck(hidden, config.codebook_size, config.codebook_dim, config.codebook_dropout)
            if config.codebook else None
        )
        self.gru = nn.GRU(hidden, hidden)
        for name, param in self.gru.named_parameters():
            if "bias" in name:
                nn.init.constant_(param, 0)
            elif "weight" in name:
                nn.init.orthogonal_(param, 1.0)
        self.actor = _layer(nn.Linear(hidden, n_actions), std=0.01)
        self.critic = _layer(nn.Linear(hidden, 1), std=1.0)
        self.target = _layer(nn.Linear(hidden, 3), std=0.01) if config.target_head else None

    @property
    def no_action(self) -> int:
        """The previous-action index of a first turn."""
        return len(self.config.action_names)

    def initial_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(1, batch, self.config.hidden_size, device=self.actor.weight.device)

    def inputs(self, images: np.ndarray, instructions: Sequence[str], pitch: np.ndarray, turn: np.ndarray,
               max_turns: int | np.ndarray, previous: np.ndarray) -> dict[str, torch.Tensor]:
        """A batch of turns as tensors on the policy's device; views are resized to ``view_size`` if needed."""
        width, height = self.config.view_size
        images = np.asarray(images)
        if images.shape[1:3] != (height, width):
            images = np.stack([cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) for image in images])
        device = self.actor.weight.device
        scalars = np.stack([np.asarray(pitch, np.float32) / 90.0, np.asarray(turn, np.float32) / np.asarray(max_turns, np.float32)], axis=1)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(images)).to(device),
            "words": self.tokenizer.batch(instructions).to(device),
            "scalars": torch.from_numpy(scalars).to(device),
            "previous": torch.as_tensor(np.asarray(previous), dtype=torch.long, device=device),
            "last_turn": torch.as_tensor(np.asarray(turn) >= np.asarray(max_turns) - 1, device=device),
        }

    def embed(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, hidden) joint embedding of a batch of turns (through the codebook if enabled)."""
        words = self.words(x["words"])
        maps = self.cnn(x["image"].permute(0, 3, 1, 2).float() / 255.0)
        scale, shift = self.film(words).chunk(2, dim=1)
        maps = maps * (1.0 + scale[:, :, None, None]) + shift[:, :, None, None]
        visual = [self.visual(maps)] + ([] if self.query is None else self._attend(maps, words))
        joint = self.joint(torch.cat([*visual, words, self.previous(x["previous"]), x["scalars"]], dim=1))
        return self.codebook(joint) if self.codebook is not None else torch.relu(joint)

    def _attend(self, maps: torch.Tensor, words: torch.Tensor) -> list[torch.Tensor]:
        """[attended features (B, C), best cell score (B, 1), attention's mean cell position (B, 2)]."""
        cells = maps.flatten(2)  # (B, C, cells)
        scores = torch.einsum("bcn,bc->bn", cells, self.query(words)) / math.sqrt(cells.shape[1])
        attention = scores.softmax(dim=1)
        return [torch.einsum("bcn,bn->bc", cells, attention), scores.max(dim=1, keepdim=True).values,
                attention @ self.cell_xy]

    def memory(self, x: dict[str, torch.Tensor], state: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """GRU over a (T * B) sequence of turns of B episodes; ``starts`` (T * B) resets the state."""
        embeds = self.embed(x)
        batch = state.shape[1]
        embeds, starts = embeds.reshape(-1, batch, embeds.shape[-1]), starts.reshape(-1, batch)
        outputs = []
        for embed, start in zip(embeds, starts):
            output, state = self.gru(embed.unsqueeze(0), (1.0 - start).view(1, -1, 1) * state)
            outputs.append(output)
        return torch.cat(outputs).flatten(0, 1), state

    def action_logits(self, hidden: torch.Tensor, last_turn: torch.Tensor) -> torch.Tensor:
        """(B, actions) logits of the actor; with ``last_turn_submits``, only submit on a last turn."""
        logits = self.actor(hidden)
        if self.config.last_turn_submits:
            others = torch.ones(logits.shape[-1], dtype=torch.bool, device=logits.device)
            others[self.config.action_names.index("submit")] = False
            logits = logits.masked_fill(last_turn.view(-1, 1) & others, torch.finfo(logits.dtype).min)
        return logits

    def get_value(self, x: dict[str, torch.Tensor], state: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        return self.critic(self.memory(x, state, starts)[0]).squeeze(-1)

    def get_action_and_value(
        self, x: dict[str, torch.Tensor], state: torch.Tensor, starts: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, log-probability, entropy, value, next state); samples when ``action`` is None."""
        hidden, state = self.memory(x, state, starts)
        return (*self.heads(hidden, x["last_turn"], action), state)

    def heads(self, hidden: torch.Tensor, last_turn: torch.Tensor, action: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, log-probability, entropy, value) from GRU outputs; samples when ``action`` is None."""
        distribution = Categorical(logits=self.action_logits(hidden, last_turn))
        if action is None:
            action = distribution.sample()
        return action, distribution.log_prob(action), distribution.entropy(), self.critic(hidden).squeeze(-1)

    def target_loss(self, hidden: torch.Tensor, direction: torch.Tensor, half_fov: tuple[float, float]) -> torch.Tensor:
        """Auxiliary loss of the target head: in view or not (cross-entropy) and, when in view,
        the offset from the centre in half fields of view (squared error).

        "In view" is approximate: the angular offsets to the target windows' centre within
        half the fields of view (no projection, a wide target's edge does not count, HPS
        has no pitch), good enough as a dense training signal.

        ``direction`` (B, 2) holds the signed degrees from the heading to the target
        (:func:`panoseek.envs.judge.target_direction`); ``half_fov`` the view's half
        horizontal and vertical fields of view in degrees.
        """
        if self.target is None:
            raise ValueError("this policy has no target head (config target_head=False)")
        prediction = self.target(hidden)
        offset, in_view = target_head_labels(direction, half_fov)
        in_view = in_view.float()
        loss = nn.functional.binary_cross_entropy_with_logits(prediction[:, 0], in_view)
        squared = ((prediction[:, 1:] - offset) ** 2).sum(dim=1)
        return loss + (squared * in_view).sum() / in_view.sum().clamp(min=1.0)


def target_head_labels(direction: torch.Tensor, half_fov: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """The target head's labels from ``direction`` (B, 2) degrees to the target: (the offset in
    half fields of view (B, 2), whether the target is in view (B,) bool; see :meth:`SearchPolicy.target_loss`)."""
    offset = direction / direction.new_tensor(half_fov)
    return offset, (offset.abs() <= 1.0).all(dim=1)


def policy_checkpoint(policy: SearchPolicy) -> dict[str, Any]:
    """The policy as plain data (config and weights) for ``torch.save``."""
    return {"format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(policy.config),
            "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()}}


def load_policy(path: str | Path, expect: dict[str, Any] | None = None, device: str = "cpu") -> SearchPolicy:
    """The policy saved in ``path`` (a policy or training checkpoint), in eval mode.

    ``expect`` maps config fields (``view_size``, ``codebook``, ``action_names``, ...) to
    the values the caller needs; any difference, a missing field or weights that do
    not fit the stored config raise :class:`PolicyCheckpointError` naming the field.
    """
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise PolicyCheckpointError(f"{path}: not a readable checkpoint ({error})") from None
    data = data.get("policy", data) if isinstance(data, dict) else data
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise PolicyCheckpointError(f"{path}: field 'format' must be {CHECKPOINT_FORMAT!r}, got {found!r}")
    stored = data.get("config")
    fields = {f.name: f for f in dataclasses.fields(PolicyConfig)}
    if not isinstance(stored, dict):
        raise PolicyCheckpointError(f"{path}: field 'config' is missing")
    unknown = sorted(set(stored) - set(fields))
    if unknown:
        raise PolicyCheckpointError(f"{path}: unknown config field(s) {unknown}")
    for name in ("vocabulary", "action_names"):
        if name not in stored:
            raise PolicyCheckpointError(f"{path}: config field {name!r} is missing")
    stored = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
    for name, wanted in (expect or {}).items():
        have = stored.get(name, fields[name].default)
        wanted = tuple(wanted) if isinstance(wanted, list) else wanted
        if have != wanted:
            raise PolicyCheckpointError(f"{path}: checkpoint field {name!r} is {have!r}, expected {wanted!r}")
    try:
        policy = SearchPolicy(PolicyConfig(**stored))
    except (TypeError, ValueError, RuntimeError) as error:
        raise PolicyCheckpointError(f"{path}: config does not build a policy ({error})") from None
    _load_weights(policy, data.get("state_dict"), path)
    return policy.to(device).eval()


def _load_weights(policy: SearchPolicy, weights: Any, path: Path) -> None:
    """Load ``weights``, naming the config field a mismatch points at."""
    if not isinstance(weights, dict):
        raise PolicyCheckpointError(f"{path}: field 'state_dict' is missing")
    expected = policy.state_dict()
    codebook_keys = {k for k in set(weights) ^ set(expected) if k.startswith("codebook.")}
    if codebook_keys:
        raise PolicyCheckpointError(
            f"{path}: config field 'codebook' is {policy.config.codebook} but the weights "
            f"{'lack' if policy.config.codebook else 'have'} a codebook ({sorted(codebook_keys)[0]}, ...)"
        )
    blame = {"actor.": "action_names", "previous.": "action_names", "visual.": "view_size", "words.": "vocabulary",
             "target.": "target_head", "query.": "spatial_attention", "cnn.": "cnn", "joint.": "spatial_attention"}
    for key, tensor in expected.items():
        if key not in weights or weights[key].shape != tensor.shape:
            field = next((f for prefix, f in blame.items() if key.startswith(prefix)), "state_dict")
            found = "missing" if key not in weights else f"shape {tuple(weights[key].shape)}"
            raise PolicyCheckpointError(
                f"{path}: weights {key!r} ({found}) do not fit config field {field!r} "
                f"(expected shape {tuple(tensor.shape)})"
            )
    unexpected = sorted(set(weights) - set(expected))
    if unexpected:
        field = next((f for prefix, f in blame.items() if unexpected[0].startswith(prefix)), None)
        if field is None:
            raise PolicyCheckpointError(f"{path}: field 'state_dict' has unexpected weights {unexpected[:3]}")
        raise PolicyCheckpointError(f"{path}: weights {unexpected[:3]} are not in a policy with config field "
                                    f"{field!r} = {getattr(policy.config, field)!r}")
    policy.load_state_dict(weights)
