"""A private working directory for third-party code that writes into the current one.

onnxruntime's symbolic shape inference saves ``sym_shape_infer_temp.onnx`` and a
``<uuid>.data`` file into the working directory when it fails (its debugging aid), and other
converters drop logs there.  A user's working directory is not ours to write: such calls run
inside ``private_cwd()``, a fresh temporary directory that is removed afterwards, whatever
happens.  The working directory is process-wide, so this is for single-threaded calls only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def private_cwd(prefix: str = "edgeship-cwd-") -> Iterator[Path]:
    """Run the body in a new temporary working directory; restore the old one and delete the
    new one on exit. Pass absolute paths into the body (relative ones would resolve there)."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)
