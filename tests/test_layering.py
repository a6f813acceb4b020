"""The dependency rules of DESIGN.md, checked on the source: kernels is a leaf, folders
never import the root's modules, envs never imports scenes/agents/training, and the
command line fails loudly when a listed command module is missing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from panoseek import cli

ROOT = Path(__file__).resolve().parents[1]
ROOT_MODULES = tuple(f"panoseek.{path.stem}" for path in (ROOT / "panoseek").glob("*.py") if path.stem != "__init__")
FORBIDDEN = {
    "kernels": ("panoseek.envs", "panoseek.scenes", "panoseek.agents", "panoseek.training", *ROOT_MODULES),
    "envs": ("panoseek.scenes", "panoseek.agents", "panoseek.training", *ROOT_MODULES),
    "scenes": ("panoseek.agents", "panoseek.training", *ROOT_MODULES),
    "agents": ("panoseek.training", *ROOT_MODULES),
    "training": ROOT_MODULES,
}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            if node.module == "panoseek":  # from panoseek import x
                names += [f"panoseek.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_folders_import_only_what_their_layer_allows(folder):
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[folder])
    ]
    assert offenders == []


def test_a_missing_command_module_is_an_error(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "panoseek.no_such_cli"))
    with pytest.raises(ModuleNotFoundError, match="no_such_cli"):
        cli.build_parser()
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("panoseek.envs.geometry",))  # a module without add_commands
    with pytest.raises(ImportError, match="has no add_commands"):
        cli.build_parser()
