"""edgeship: take a trained neural network to a real edge device and prove it fits.

The public API is the CLI's twin; names are imported lazily so ``import edgeship`` (and
``edgeship --help``) stay fast and the runtime can ship to devices on its own.

Example:
    >>> import edgeship
    >>> result = edgeship.benchmark("examples/models/digits_cnn.onnx", runs=50)  # doctest: +SKIP
    >>> result.check(edgeship.Budget(max_latency_ms=5)).ok                       # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from edgeship.core import __version__ as __version__

# public name -> "module:attribute"; every CLI command is a thin wrapper over one of these
_EXPORTS = {
    "Budget": "edgeship.budget:Budget",
    "Verdict": "edgeship.budget:Verdict",
    "BenchmarkResult": "edgeship.runtime.bench:BenchmarkResult",
    "benchmark": "edgeship.bench:benchmark",
    "deploy": "edgeship.targets.deploy:deploy",
    "provision": "edgeship.provisioning:provision",
    "bench_fleet": "edgeship.fleet:bench_fleet",
    "SSHTarget": "edgeship.targets.ssh:SSHTarget",
    "quantize": "edgeship.converters.quantize:quantize",
    "Dataset": "edgeship.core.data:Dataset",
    "report": "edgeship.reporting:report",
    "prune": "edgeship.converters.prune:prune",
    "distill": "edgeship.converters.distill:distill",
    "export": "edgeship.converters.export:export",
    "trust_model_code": "edgeship.converters.export.source:trust_model_code",
    "compress": "edgeship.compression:compress",
    "CompressResult": "edgeship.compression:CompressResult",
    "Recipe": "edgeship.recipe:Recipe",
    "load_recipes": "edgeship.recipe:load_recipes",
    "inspect_model": "edgeship.inspect:inspect_model",
    "DeviceProfile": "edgeship.device_profiles.schema:DeviceProfile",
    "load_profile": "edgeship.profiles:load_profile",
    "list_profiles": "edgeship.profiles:list_profiles",
    "local_profile": "edgeship.profiles:local_profile",
    "match_profile": "edgeship.profiles:match_profile",
    "detect_profile": "edgeship.profiles:detect_profile",
    "EdgeshipError": "edgeship.core.errors:EdgeshipError",
    "ConfigError": "edgeship.core.errors:ConfigError",
    "ModelError": "edgeship.core.errors:ModelError",
    "UnsupportedError": "edgeship.core.errors:UnsupportedError",
    "MissingBackendError": "edgeship.core.errors:MissingBackendError",
    "OutputMismatchError": "edgeship.core.errors:OutputMismatchError",
    "TargetError": "edgeship.core.errors:TargetError",
    "BudgetExceeded": "edgeship.core.errors:BudgetExceeded",
}


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'edgeship' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
