"""The public API: every export resolves to what it names, and the CLI starts without heavy imports."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import edgeship
import pytest


def test_every_export_resolves_even_after_all_submodules_are_imported() -> None:
    """A submodule named like an exported function would replace it on import (edgeship.report
    the module instead of edgeship.report() the function): import them all, then check."""
    for info in pkgutil.walk_packages(edgeship.__path__, "edgeship."):
        if info.name.startswith("edgeship.cli") or ".remote." in info.name:
            continue
        importlib.import_module(info.name)
    for name in edgeship.__all__:
        value = getattr(edgeship, name)
        assert not isinstance(value, types.ModuleType), f"edgeship.{name} is a module"


BACKENDS_AND_ML = {"torch", "onnx", "onnxruntime", "openvino", "tensorflow", "nncf", "paramiko",
                   "ai_edge_litert", "jax", "ray"}


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        # `edgeship --help` starts fast: the CLI builds without any backend or ML library
        ("from edgeship.cli import build_app; build_app()", BACKENDS_AND_ML),
        # the runtime is copied to devices on its own: stdlib + numpy, nothing else
        ("import edgeship.runtime, edgeship.runtime.bench",
         BACKENDS_AND_ML | {"pydantic", "yaml", "typer", "rich"}),
    ],
)
def test_imports_stay_light(statement: str, forbidden: set[str]) -> None:
    code = f"import sys; {statement}; print(sorted(set({sorted(forbidden)!r}) & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
