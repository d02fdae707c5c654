"""Joining a Ray cluster: the one connection the distributed search
(``edgeship.compression.scaleout``) and the device lab (``edgeship.lab``) share."""

from __future__ import annotations

import threading
from typing import Any, Union

from edgeship.core.errors import ConfigError, MissingBackendError

INSTALL_HINT = "pip install 'edgeship[ray]'"
_CONNECTING = threading.Lock()


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingBackendError("--ray needs Ray, which is not installed",
                                  INSTALL_HINT) from None
    return ray


def connect(address: Union[str, bool, None]) -> Any:
    """Join the cluster at ``address`` (``"auto"``/True: ``RAY_ADDRESS``, this machine's running
    cluster, or a new local one); reuses a connection this process already has."""
    ray = require_ray()
    where = None if address in (True, "auto", "", None) else str(address)
    try:
        with _CONNECTING:  # a fleet's threads lease at once: one of them joins
            if not ray.is_initialized():
                ray.init(address=where, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {where or 'auto'}: "
                          f"{' '.join(str(exc).split())[:200]}",
                          "start one with 'ray start --head' and pass its address") from None
    return ray


__all__ = ["INSTALL_HINT", "connect", "require_ray"]
