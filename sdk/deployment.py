"""``edgeship.deploy``: put a model and the on-device runtime into a device's cache over SFTP.

(Named ``deployment`` so that importing it cannot shadow the ``edgeship.deploy`` function.)
How files are bundled, checked and sent is the targets layer's (``edgeship.targets.staging``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from edgeship.core.errors import ConfigError
from edgeship.targets.base import Target
from edgeship.targets.staging import DeployProgress, DeployReport, deploy_to, file_sha256

__all__ = ["DeployReport", "deploy", "deploy_to", "file_sha256"]


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
