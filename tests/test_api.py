"""The public API: every export resolves to what it names, and the CLI starts without heavy imports."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import edgeship


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


def test_cli_help_imports_no_heavy_library() -> None:
    code = (
        "import sys; from edgeship.cli import build_app; build_app(); "
        "heavy = {'torch', 'onnx', 'onnxruntime', 'openvino', 'tensorflow', 'nncf', 'paramiko', "
        "'ai_edge_litert', 'jax'} & set(sys.modules); print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
