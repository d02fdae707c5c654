"""Backends, one module each, imported only when a model needs them."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from edgeship.runtime.errors import MissingBackendError
from edgeship.runtime.formats import get_backend
from edgeship.runtime.session import Session


def import_backend(name: str) -> ModuleType:
    """Import the first available module of backend ``name`` or say what to pip install."""
    backend = get_backend(name)  # its env is already set: edgeship.runtime.quiet_backends()
    for blocked in backend.blocked:
        if backend.modules[0] not in sys.modules:  # too late once the backend is imported
            sys.modules.setdefault(blocked, None)  # type: ignore[arg-type]
    reasons = []
    for module in backend.modules:
        try:
            return importlib.import_module(module)
        except ImportError as exc:  # tflite-runtime under numpy 2 fails here too
            reasons.append(f"{module}: {str(exc).splitlines()[0] if str(exc) else 'not found'}")
        except Exception as exc:  # a broken install raises all sorts; report it, don't hide it
            reasons.append(f"{module}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    raise MissingBackendError(
        f"the {name} backend is not available ({'; '.join(reasons)})",
        f"pip install {backend.pip}",
    )


def open_session(backend: str, path: Path, **options: Any) -> Session:
    """Create a Session with ``backend`` (a name from formats.BACKENDS)."""
    module, _, cls = get_backend(backend).session.partition(":")
    session: Session = getattr(importlib.import_module(module), cls)(path, **options)
    return session
