"""Suites: immutable task sequences with a stable fingerprint, spec parsing, ``scenes info``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest

from panoseek.cli import main
from panoseek.envs.task import HOS, HPS, Task
from panoseek.scenes.suite import SYNTH_SPLITS, Suite, SuiteError, fingerprint, load_suite, task_record

from conftest import make_task, smooth_panorama


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    panorama = smooth_panorama(64)
    return [
        make_task("a", HOS, panorama, levels=(0, 0, 1, 2)),
        make_task("b", HOS, panorama, start_yaws=(0.0, 180.0), levels=(2, 2)),
        make_task("c", HPS, panorama, levels=(0, 1, 3, 3)),
    ]


def test_suite_is_an_immutable_sequence(tasks: list[Task]) -> None:
    source = list(tasks)
    suite = Suite("test:x", source, "f00")
    source.pop()  # the suite keeps its own copy
    assert isinstance(suite, Sequence)
    assert len(suite) == 3 and [t.id for t in suite] == ["a", "b", "c"]
    assert suite[-1] is tasks[2] and suite[1:] == (tasks[1], tasks[2])
    assert suite.name == "test:x" and suite.fingerprint == "f00"
    with pytest.raises(AttributeError):
        suite.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        suite[0] = tasks[1]  # type: ignore[index]


def test_suite_refuses_duplicate_ids_and_non_tasks(tasks: list[Task]) -> None:
    with pytest.raises(SuiteError, match="task id 'a' appears more than once"):
        Suite("test:x", [tasks[0], tasks[0]], "f")
    with pytest.raises(SuiteError, match="item 1 is a dict"):
        Suite("test:x", [tasks[0], {"id": "b"}], "f")


def test_suite_keeps_a_lazy_sequence_lazy(tasks: list[Task]) -> None:
    built: list[int] = []

    class OnDemand(Sequence):
        def __len__(self) -> int:
            return 1000

        def __getitem__(self, index: int) -> Task:
            if not -1000 <= index < 1000:
                raise IndexError(index)
            built.append(index)
            return tasks[index % 3]

    suite = Suite("test:lazy", OnDemand(), "f")
    assert len(suite) == 1000 and built == []
    assert suite[4] is tasks[1] and built == [4]


def test_describe_counts_tasks_episodes_and_levels(tasks: list[Task]) -> None:
    description = Suite("test:x", tasks, "f00").describe()
    assert description["name"] == "test:x" and description["fingerprint"] == "f00"
    assert description["tasks"] == 3 and description["episodes"] == 10
    assert description["kinds"]["HOS"] == {
        "tasks": 2,
        "episodes": 6,
        "levels": {"Easy": 2, "Medium": 1, "Hard": 3},
    }
    assert description["kinds"]["HPS"] == {
        "tasks": 1,
        "episodes": 4,
        "levels": {"Easy": 1, "Medium": 1, "Hard": 0, "Extreme": 2},
    }


def test_fingerprint_is_canonical() -> None:
    parts = {"seeds": [1, 2, 3], "version": "1.0", "nested": {"b": 1.5, "a": None}}
    reordered = {"nested": {"a": None, "b": 1.5}, "version": "1.0", "seeds": (1, 2, 3)}
    assert fingerprint(parts) == fingerprint(reordered)
    assert fingerprint({"x": np.int64(3), "y": np.float32(0.5)}) == fingerprint({"x": 3, "y": 0.5})
    assert fingerprint(parts) != fingerprint({**parts, "seeds": [1, 2, 4]})
    assert len(fingerprint(parts)) == 16 and int(fingerprint(parts), 16) >= 0
    with pytest.raises(SuiteError, match="not JSON data"):
        fingerprint({"x": object()})


def test_fingerprint_is_the_same_in_another_process() -> None:
    parts = {"generator": "2.1", "seeds": list(range(50)), "angles": [0.1, 1e-7, 359.99]}
    code = (
        "import json, sys; from panoseek.scenes.suite import fingerprint; "
        "print(fingerprint(json.loads(sys.argv[1])))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, json.dumps(parts)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == fingerprint(parts)


def test_task_record_leaves_out_the_panorama(tasks: list[Task]) -> None:
    record = task_record(tasks[2])
    assert "panorama" not in record
    assert record == {
        "id": "c",
        "kind": "HPS",
        "instruction": "Go to gate 12.",
        "yaw_range": [80.0, 100.0],
        "pitch_range": None,
        "start_yaws": [0.0, 90.0, 180.0, 270.0],
        "levels": [0, 1, 3, 3],
        "metadata": {},
    }
    json.dumps(record)  # JSON data


@pytest.mark.parametrize(
    "spec, message",
    [
        ("synth", r"not NAME:ARG; valid specs: synth:train\|val\|test\|test-unseen, hstar:FOLDER or jsonl:FILE"),
        ("pano:test", "unknown suite 'pano' in 'pano:test'; valid suites: synth, hstar, jsonl"),
        ("synth:dev", "unknown synth split 'dev'; valid splits: train, val, test, test-unseen"),
        ("jsonl:", "lacks its argument"),
        ("hstar:/nonexistent/folder", "hstar:/nonexistent/folder: folder not found"),
        ("jsonl:/nonexistent/tasks.jsonl", "jsonl:/nonexistent/tasks.jsonl: manifest file not found"),
    ],
)
def test_bad_specs_get_one_clear_error(spec: str, message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        load_suite(spec)


def test_spec_parsing_and_the_generator_agree_on_synth_splits() -> None:
    from panoseek.scenes.synth import SPLITS

    assert SYNTH_SPLITS == tuple(SPLITS) == ("train", "val", "test", "test-unseen")


@pytest.fixture
def manifest(tmp_path) -> str:
    from panoseek.envs.panorama import save_image

    save_image(tmp_path / "pano.png", smooth_panorama(64))
    lines = [
        {"image": "pano.png", "instruction": "Find the clock.", "kind": "HOS", "yaw_range": [10, 30],
         "pitch_range": [0, 10], "levels": [0, 1, 2, 2]},
        {"image": "pano.png", "instruction": "Go to exit B.", "kind": "HPS", "yaw_range": [200, 220], "levels": 3},
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"jsonl:{path}"


def test_scenes_info_prints_a_table(manifest: str, capsys) -> None:
    assert main(["scenes", "info", manifest]) == 0
    out = capsys.readouterr().out
    suite = load_suite(manifest)
    assert manifest in out and suite.fingerprint in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:]}
    assert rows["kind"] == ["tasks", "episodes", "Easy", "Medium", "Hard", "Extreme"]
    assert rows["HOS"] == ["1", "4", "1", "1", "2", "-"]
    assert rows["HPS"] == ["1", "4", "0", "0", "0", "4"]
    assert rows["all"] == ["2", "8"]


def test_scenes_info_json_is_describe(manifest: str, capsys) -> None:
    assert main(["scenes", "info", manifest, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == load_suite(manifest).describe()


def test_scenes_info_reports_a_bad_spec_on_stderr(capsys) -> None:
    assert main(["scenes", "info", "synth:dev"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "unknown synth split 'dev'" in captured.err
