"""Every public name of the folder packages resolves to the object its module defines.

A submodule named like one of its package's public names would replace that name with
the module as soon as anything imports the submodule; importing each module first
makes such a clash fail here, whatever order other tests import things in.
"""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package_name", ["panoseek.envs", "panoseek.scenes", "panoseek.kernels"])
def test_public_names_survive_their_modules_being_imported(package_name: str) -> None:
    package = importlib.import_module(package_name)
    for name, module_name in package._EXPORTS.items():
        module = importlib.import_module(f"{package_name}.{module_name}")
        assert getattr(package, name) is getattr(module, name), f"{package_name}.{name}"
    with pytest.raises(AttributeError, match="no attribute"):
        getattr(package, "no_such_name")
