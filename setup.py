"""Package layout: the design card's top-level folders, mapped into the ``panoseek`` namespace.

``envs/`` installs as ``panoseek.envs``, ``envs/eval/`` as ``panoseek.envs.eval``, and so on:
every folder with an ``__init__.py`` below a mapped folder is found automatically (setuptools'
``find_packages``), so a new subpackage can never be silently left out of the wheel
(``tests/test_packaging.py`` builds one and checks). Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = ("envs", "scenes", "agents", "kernels", "training")

packages = ["panoseek"]
for folder in FOLDERS:
    packages += [f"panoseek.{folder}", *(f"panoseek.{folder}.{sub}" for sub in find_packages(where=folder))]

setup(packages=packages, package_dir={"panoseek": "panoseek", **{f"panoseek.{folder}": folder for folder in FOLDERS}})
