"""``edgeship deploy`` / ``edgeship.deploy``: open the target (an SSH string or alias, or an
open ``Target``) and stage the model and the runtime on it (``staging.deploy_to``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from edgeship.core.errors import ConfigError
from edgeship.targets.base import DeployReport, Target
from edgeship.targets.staging import DeployProgress, deploy_to


def deploy(
    model: Union[str, Path],
    target: Union[str, Target],
    *,
    remote_dir: Optional[str] = None,
    accept_new_host_key: bool = False,
    progress: Optional[DeployProgress] = None,
) -> DeployReport:
    """Copy ``model`` (+ manifest) and ``edgeship.runtime`` to the device's cache over SFTP.

    ``target`` is an SSH target string or alias, or an open ``Target``.  Files already on the
    device with the same sha256 are skipped; the report says what was sent.

    Example:
        >>> r = deploy("digits_cnn.onnx", "pi@raspberrypi.local")   # doctest: +SKIP
        >>> print(r.model_path, r.bytes_sent)                       # doctest: +SKIP
    """
    if isinstance(target, Target):
        return deploy_to(target, Path(model), progress, remote_dir=remote_dir)
    if target in ("", "local"):
        raise ConfigError("deploy needs a device, not 'local'",
                          "pass --target user@host[:port] or a Host alias")
    from edgeship.targets.ssh import SSHTarget

    with SSHTarget(target, accept_new_host_key=accept_new_host_key,
                   remote_dir=remote_dir) as owned:
        return deploy_to(owned, Path(model), progress)


__all__ = ["deploy"]
