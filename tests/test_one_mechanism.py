"""One mechanism everywhere: the same reply earns the same reward and validity under
``panoseek eval`` and through ``TextActions``, in every prompt format, strict or not;
the engine has one episode loop; an agent without pixels scores at chance."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import smooth_panorama
from panoseek.cli import main
from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.eval.records import read_episodes
from panoseek.envs.panorama import save_image
from panoseek.envs.protocol import PROMPT_FORMATS
from panoseek.envs.wrappers import TextActions

# Each script: the replies of one episode (the last one submits). The target is at yaw
# 80-100, pitch -5..5; episodes start at yaw 0.
SCRIPTS = {
    "free_think": "<think>turn</think><answer>rotate(90,0)</answer>|<think>there</think><answer>submit(90,0)</answer>",
    "no_think": "<answer>rotate(90,0)</answer>|<answer>submit(90,0)</answer>",
    "grounding": "<think><observation>wall</observation><reasoning>turn</reasoning></think><answer>rotate(90,0)</answer>"
    "|<think><observation>clock</observation><reasoning>here</reasoning></think><answer>submit(90,0)</answer>",
    "lenient": "<answer> rotate( 90.5 , 0 ) </answer>|<answer>SUBMIT(90, 0).</answer>",
    "garbage": "look left|<answer>rotate(1e400,0)</answer>|<think>x</think><answer>submit(90,0)</answer>",
}


class ScriptedAgent:
    """Replies from a fixed script in a declared prompt format (a factory for ``panoseek eval``)."""

    def __init__(self, prompt_format: str = "free_think", script: str = "free_think") -> None:
        self.prompt_format = prompt_format
        self.replies = SCRIPTS[script].split("|")

    def reset(self, task_info):
        assert task_info["prompt_format"] == self.prompt_format
        self.turn = 0

    def act(self, observation):
        reply = self.replies[min(self.turn, len(self.replies) - 1)]
        self.turn += 1
        return reply


def _suite(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    save_image(folder / "pano.png", smooth_panorama(128))
    item = {"image": "pano.png", "instruction": "Find the clock.", "kind": "HOS", "yaw_range": [80, 100],
            "pitch_range": [-5, 5], "start_yaws": [0], "levels": [2], "id": "clock"}
    (folder / "tasks.jsonl").write_text(json.dumps(item) + "\n")
    return f"jsonl:{folder / 'tasks.jsonl'}"


def _text_actions(suite_dir: Path, prompt_format: str, strict: bool, script: str) -> tuple[float, list[bool]]:
    from panoseek.scenes import load_suite

    env = TextActions(PanoramaSearchEnv(list(load_suite(f"jsonl:{suite_dir / 'tasks.jsonl'}")), view_size=(32, 18)),
                      strict=strict, prompt_format=prompt_format)
    env.reset(seed=0, options={"task_index": 0, "start_index": 0})
    replies = SCRIPTS[script].split("|")
    total, valid, done, turn = 0.0, [], False, 0
    while not done:  # the same replies as ScriptedAgent: the script, then its last reply again
        _, reward, terminated, truncated, info = env.step(replies[min(turn, len(replies) - 1)])
        turn += 1
        total, done = total + reward, terminated or truncated
        valid.append(info["valid_action"])
    return total, valid


@pytest.mark.slow
@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("prompt_format", PROMPT_FORMATS)
def test_every_format_earns_the_same_under_eval_and_text_actions(tmp_path, prompt_format, strict):
    suite = _suite(tmp_path / "suite")
    for script in (*PROMPT_FORMATS, "lenient", "garbage"):
        out = tmp_path / f"{script}"
        args = ["eval", "--agent", "test_one_mechanism:ScriptedAgent", "--suite", suite, "--out", str(out),
                "--view-size", "32x18", "--quiet", "--agent-arg", f"prompt_format={prompt_format}",
                "--agent-arg", f"script={script}"] + (["--strict"] if strict else [])
        assert main(args) == 0
        (record,) = read_episodes(out / "episodes.jsonl")
        reward, valid = _text_actions(tmp_path / "suite", prompt_format, strict, script)
        assert record["reward"] == reward and [a["valid"] for a in record["actions"]] == valid, (script, record)
        if script == prompt_format:  # the agent's own layout: success and the format half
            assert record["success"] and record["reward"] == 1.0
        if script == "no_think" and prompt_format != "no_think":  # once judged in the wrong layout
            assert record["reward"] == (0.0 if strict else 0.5) and (record["submitted"] is None) == strict
        if script == "lenient":  # never well-formed; refused when strict
            assert record["reward"] == (0.0 if strict else 0.5)


# Loops that step an environment outside envs/rollout.py, each with the reason it is not a
# second episode loop. PPO collects experience from the natively batched VectorSearchEnv
# (Gymnasium's vector API: N episodes per step, the env's own judge, validator and reward).
ALLOWED_ENV_LOOPS = {
    "training/ppo.py": "PPO's collection loop over the vector env",
    "benchmarks/vector_env.py": "steps/s of the vector env against SyncVectorEnv",
}


def _steps_an_env(call: ast.Call) -> bool:
    """A call ``<...env...>.step(...)`` (optimizers and schedulers step too, and do not count)."""
    return isinstance(call.func, ast.Attribute) and call.func.attr.startswith("step") and "env" in ast.unparse(call.func.value).lower()


def test_the_engine_has_one_episode_loop():
    """Only envs/rollout.py loops over env.step (besides the vector-env loops allowed above,
    each with its reason): a second episode loop anywhere is a bug. Loops are followed into
    the module's own functions they call, so moving a step into a helper does not hide it."""
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for folder in ("envs", "scenes", "agents", "training", "panoseek", "benchmarks"):
        for path in sorted((root / folder).rglob("*.py")):
            name = str(path.relative_to(root))
            if path.name == "rollout.py" or name in ALLOWED_ENV_LOOPS:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            functions = {node.name: node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
            stepping = {name_ for name_, fn in functions.items() if any(
                isinstance(n, ast.Call) and _steps_an_env(n) for n in ast.walk(fn))}
            for loop in (node for node in ast.walk(tree) if isinstance(node, (ast.While, ast.For))):
                for call in (n for n in ast.walk(loop) if isinstance(n, ast.Call)):
                    helper = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)
                    if _steps_an_env(call) or helper in stepping:
                        offenders.append(f"{name}:{loop.lineno}")
    assert offenders == []


class PixelBlindAgent:
    """Reads everything the runner hands it (task info, observation text, heading, feedback,
    turn) but never the pixels, and submits a direction computed from all of it."""

    def reset(self, task_info):
        assert not {"target", "exemplar", "metadata", "level", "task_id", "episode_id"} & set(task_info)
        text = json.dumps({k: v for k, v in task_info.items() if k != "seed"}, sort_keys=True, default=str)
        self.guess = sum(text.encode()) * 37 % 360  # any deterministic function of what it was told

    def act(self, observation):
        assert set(observation) == {"image", "instruction", "heading", "turn", "feedback"}
        hint = sum(f"{observation['instruction']}{observation['feedback']}".encode()) % 360
        return {"submit": 1, "yaw": float((self.guess + hint + observation["heading"][0]) % 360), "pitch": -5.0}


class MemoryAgent:
    """Remembers, in class state that outlives its instances, the start yaws it met for each
    instruction, and submits the mean direction of the other starts of the same instruction
    (in synth v1 the starts were placed around the target, so this found it well above chance)."""

    memory: dict[str, list[float]] = {}

    def reset(self, task_info):
        starts = MemoryAgent.memory.setdefault(task_info["instruction"], [])
        others = [yaw for yaw in starts if yaw != task_info["start_yaw"]]
        mean = math.degrees(math.atan2(sum(math.sin(math.radians(y)) for y in others),
                                       sum(math.cos(math.radians(y)) for y in others))) if others else task_info["start_yaw"] + 24
        self.guess = mean % 360
        starts.append(task_info["start_yaw"])

    def act(self, observation):
        return {"submit": 1, "yaw": self.guess, "pitch": -5.0}


def _at_chance(summary, suite) -> None:
    """Each kind's success within 2 s.e. of a submission uniform in yaw at pitch -5 (deterministic: seeded)."""
    from panoseek.envs import judge

    for kind, stats in summary["kinds"].items():
        shares = [
            judge.yaw_window(task).half_width / 180.0 * (judge.pitch_window(task) is None or judge.pitch_window(task).contains(-5.0))
            for task in suite if task.kind == kind
        ]
        chance = float(np.mean(shares))
        se = math.sqrt(chance * (1 - chance) / stats["episodes"])
        assert abs(stats["success"] - chance) < 2 * se, (kind, stats["success"], chance)


@pytest.mark.slow
@pytest.mark.parametrize("agent", [PixelBlindAgent, MemoryAgent])
def test_agents_without_pixels_score_at_chance_on_synth_val(tmp_path, agent):
    from panoseek.envs.eval.runner import run_benchmark
    from panoseek.envs.rollout import EpisodeSettings
    from panoseek.scenes import load_suite

    suite = load_suite("synth:val")
    MemoryAgent.memory.clear()
    summary = run_benchmark(suite, agent, tmp_path, run_info={"suite": "synth:val", "agent": agent.__name__},
                            settings=EpisodeSettings(view_size=(16, 9)), progress=False)
    _at_chance(summary, suite)
