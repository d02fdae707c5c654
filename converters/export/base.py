"""What every exporter takes (``ExportOptions``) and returns (``Exported``).

An exporter is ``export(source, directory, stem, options, data) -> Exported``: it writes
``<directory>/<stem><suffix>`` (plus side files) into a staging directory and says what it
wrote; ``edgeship.converters.export.export`` then checks parity, writes the manifest and moves
everything into place.  The formats table (runtime/formats.py) names each format's exporter.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from edgeship.converters.parity import Perm


@dataclass(frozen=True)
class ExportOptions:
    """The typed config of an export (recorded in the manifest's provenance)."""

    to: str  # a format name from runtime/formats.py
    precision: str = "fp32"  # fp32 | fp16 | int8, as the format allows
    opset: int = 17
    dynamic_batch: bool = True  # ONNX/OpenVINO; TFLite keeps the example input's batch
    dynamo: bool = False  # torch.onnx's dynamo exporter instead of the TorchScript one
    calibration_samples: int = 200  # int8: representative samples taken from the data
    parity_random: int = 8
    parity_real: int = 64
    check: bool = True  # run the parity check (only tests of the check itself turn it off)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Exported:
    """What an exporter wrote and how to compare it with its source."""

    file: str  # the model file's name inside the staging directory
    files: list[str]  # every file of the model, the model file first
    tolerance: str  # a key of parity.TOLERANCES
    converter: str  # e.g. "torch.onnx 2.13.0 (TorchScript exporter, opset 17)"
    input_layouts: list[Optional[str]] = field(default_factory=list)
    output_layouts: list[Optional[str]] = field(default_factory=list)
    input_perms: list[Perm] = field(default_factory=list)  # reference -> candidate layout
    output_perms: list[Perm] = field(default_factory=list)  # candidate -> reference layout
    # the file's tensors are in the source's order, so a renamed one is the source's at its
    # position (the manifest's source_name); False where the converter may have reordered them
    positional_names: bool = True
    quantization: Optional[dict[str, Any]] = None
    notes: dict[str, Any] = field(default_factory=dict)


def require_calibration_data(options: ExportOptions, data: Any) -> None:
    """Full-integer int8 is calibrated on real samples only: random ranges ruin accuracy."""
    if options.precision == "int8" and data is None:
        from edgeship.core.errors import ConfigError

        raise ConfigError("full-integer int8 export needs representative data to calibrate on",
                          "pass --data samples.npz (100-300 real, model-ready inputs)")


def image_layouts(shapes: list[tuple[Any, ...]], layout: str) -> list[Optional[str]]:
    """``layout`` for 4-D (image-like) tensors, None for everything else."""
    return [layout if len(s) == 4 else None for s in shapes]


@contextlib.contextmanager
def captured_output() -> Iterator[None]:
    """Silence everything written to fds 1 and 2 and to ``sys.stdout``/``sys.stderr``
    (converters' progress chatter, C++ logs, graph dumps on failure), so stdout stays clean for
    ``--json`` and errors stay one line; the exception a converter raises carries what the user
    needs.  With ``EDGESHIP_VERBOSE=1`` (``edgeship -v``) all of it goes to stderr instead."""
    import io
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    verbose = os.environ.get("EDGESHIP_VERBOSE") == "1"
    quiet = io.StringIO()
    with tempfile.TemporaryFile() as sink, \
            contextlib.redirect_stdout(sys.stderr if verbose else quiet), \
            contextlib.redirect_stderr(sys.stderr if verbose else quiet):
        try:
            os.dup2(saved[1] if verbose else sink.fileno(), 1)
            if not verbose:
                os.dup2(sink.fileno(), 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
