"""``BenchConfig``: how one model is measured, the one type the agent, the host and a fleet share.

The host builds it from ``edgeship.benchmark(...)``'s keywords and sends it as the agent's
argv (``to_argv``); the agent reads it back (``from_argv``) and measures with it.  Stdlib only
at import (the runtime is copied to devices alone); the input parsers are imported when used.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from edgeship.runtime.errors import ConfigError

if TYPE_CHECKING:
    from edgeship.runtime.inputs import InputFill

DEFAULT_WARMUP = 10
DEFAULT_RUNS = 100
DEFAULT_MIN_SECONDS = 1.0
AGENT = "python -m edgeship.runtime.bench"


@dataclass(frozen=True)
class BenchConfig:
    """One measurement's settings (DESIGN.md's protocol).

    ``data`` is the samples file (.npz) as a path where the agent runs; ``timeout`` is the
    host's alone (how long it waits for the agent) and is not part of the agent's argv.

    Example:
        >>> BenchConfig(runs=200, threads=1).to_argv()[:4]
        ['--warmup', '10', '--runs', '200']
    """

    backend: Optional[str] = None
    threads: Optional[int] = None
    warmup: int = DEFAULT_WARMUP
    runs: int = DEFAULT_RUNS
    min_seconds: float = DEFAULT_MIN_SECONDS
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    precision: Optional[str] = None
    seed: int = 0
    fills: Mapping[str, InputFill] = field(default_factory=dict)
    data: Optional[str] = None
    coverage: bool = True
    timeout: Optional[float] = None

    def replace(self, **changes: Any) -> BenchConfig:
        return dataclasses.replace(self, **changes)

    def check(self) -> BenchConfig:
        """Refuse counts and durations no measurement can follow; returns itself."""
        for name, value in (("--runs", self.runs), ("--warmup", self.warmup)):
            if value < 0 or (name == "--runs" and value < 1):
                raise ConfigError(f"{name} must be positive, got {value}",
                                  f"pass {name} 1 or more")
        check_min_seconds(self.min_seconds)
        if self.timeout is not None and not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError(f"timeout must be a positive finite number of seconds, got "
                              f"{self.timeout}", "pass e.g. --timeout 600")
        return self

    def to_argv(self) -> list[str]:
        """The agent's flags for these settings (argv items, never a shell string)."""
        args = ["--warmup", str(self.warmup), "--runs", str(self.runs),
                "--min-seconds", str(self.min_seconds), "--seed", str(self.seed)]
        if self.backend:
            args += ["--backend", self.backend]
        if self.threads:
            args += ["--threads", str(self.threads)]
        if self.precision:
            args += ["--precision", self.precision]
        for name, shape in self.input_shapes.items():
            args += ["--input-shape", f"{name}={','.join(map(str, shape))}"]
        if self.fills:
            from edgeship.runtime.inputs import fill_args

            args += fill_args(self.fills)
        if self.data:
            args += ["--data", self.data]
        if not self.coverage:
            args.append("--no-coverage")
        return args

    @classmethod
    def from_argv(cls, argv: Optional[Sequence[str]]) -> tuple[str, BenchConfig]:
        """The model and the settings of an agent command line; bad usage is a ConfigError."""
        from edgeship.runtime.inputs import parse_input_fills, parse_input_shapes

        try:
            args = build_parser().parse_args(argv)
        except _UsageError as exc:
            raise ConfigError(f"bad agent arguments: {exc}",
                              f"see {AGENT} --help") from None
        config = cls(
            backend=args.backend, threads=args.threads, warmup=args.warmup, runs=args.runs,
            min_seconds=args.min_seconds, input_shapes=parse_input_shapes(args.input_shape),
            precision=args.precision, seed=args.seed,
            fills=parse_input_fills(args.input_value, args.input_range), data=args.data,
            coverage=not args.no_coverage,
        )
        return args.model, config.check()


def check_min_seconds(value: float) -> None:
    """--min-seconds is a finite, non-negative number (nan and inf would time forever or crash)."""
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"--min-seconds must be a finite number of seconds >= 0, got {value}",
                          "pass e.g. --min-seconds 1")


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print usage and exit(2) itself
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=AGENT,
        description="Measure one model in this process; print one JSON object on stdout.",
    )
    p.add_argument("model")
    p.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    p.add_argument("--min-seconds", type=float, default=DEFAULT_MIN_SECONDS)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--backend", default=None, help="onnxruntime|openvino|tflite[:DEVICE]")
    p.add_argument("--precision", default=None, help="fp32|fp16|bf16 (OpenVINO)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D1,D2,...")
    p.add_argument("--input-value", action="append", default=[], metavar="NAME=VALUE",
                   help="feed this value (broadcast to the input's shape), e.g. sr=16000")
    p.add_argument("--input-range", action="append", default=[], metavar="NAME=LOW:HIGH",
                   help="feed uniform random values in [LOW, HIGH], e.g. input_ids=0:30521")
    p.add_argument("--data", default=None,
                   help=".npz with model-ready samples: 'x', or one array per input name")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-coverage", action="store_true", help="skip the node-coverage pass")
    return p
