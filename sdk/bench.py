"""Host side of a measurement: stage the model on a target, run the agent, parse its JSON."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from edgeship.core import errors
from edgeship.runtime.bench import (
    DEFAULT_MIN_SECONDS,
    DEFAULT_RUNS,
    DEFAULT_WARMUP,
    BenchConfig,
    BenchmarkResult,
)
from edgeship.runtime.formats import format_for_path
from edgeship.targets import Target, open_target
from edgeship.targets.base import Result, read_json

if TYPE_CHECKING:
    from edgeship.runtime.inputs import InputFill

AGENT_WHAT = "the measurement agent"
AGENT_FIX = "run it by hand with python -m edgeship.runtime.bench to see the full error"


def parse_agent_output(stdout: str, stderr: str, exit_code: int, where: str) -> BenchmarkResult:
    """Turn the agent's one JSON object back into a result, or re-raise its error here."""
    res = Result(stdout, stderr, exit_code, 0.0)
    return BenchmarkResult.from_dict(read_json(res, what=AGENT_WHAT, where=where, fix=AGENT_FIX))


def benchmark(
    model: Union[str, Path],
    target: Union[str, Target, None] = "local",
    *,
    backend: Optional[str] = None,
    threads: Optional[int] = None,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
    precision: Optional[str] = None,
    seed: int = 0,
    timeout: Optional[float] = None,
    extra_args: Sequence[str] = (),
    fills: Optional[dict[str, InputFill]] = None,
    data: Union[str, Path, None] = None,
) -> BenchmarkResult:
    """Measure ``model`` in a fresh process on ``target`` (``"local"``, an SSH target string or
    alias, or a ``Target``), following DESIGN.md's measurement protocol.

    Inputs are random, shaped by ``input_shapes``; ``fills`` fixes values or ranges per input
    (``parse_input_fills(["sr=16000"])``), and ``data`` (an .npz, one array per input name or
    ``x``) gives real samples, copied to the target for the run and removed after it.

    Example:
        >>> r = benchmark("examples/models/digits_cnn.onnx", runs=200, threads=1)  # doctest: +SKIP
        >>> print(r.latency_ms.p50, r.memory.peak_rss_mb)                        # doctest: +SKIP
    """
    config = bench_config(backend=backend, threads=threads, warmup=warmup, runs=runs,
                          min_seconds=min_seconds, input_shapes=input_shapes,
                          precision=precision, seed=seed, fills=fills, data=data, timeout=timeout)
    return run_benchmark(model, target, config, extra_args)


def bench_config(**options: Any) -> BenchConfig:
    """A ``BenchConfig`` from ``benchmark``'s keywords (None for "not given", a data path)."""
    for name in ("input_shapes", "fills"):
        if options.get(name) is None:
            options.pop(name, None)
    if options.get("data") is not None:
        options["data"] = str(options["data"])
    return BenchConfig(**options)


def run_benchmark(
    model: Union[str, Path],
    target: Union[str, Target, None],
    config: BenchConfig,
    extra_args: Sequence[str] = (),
) -> BenchmarkResult:
    """``benchmark`` with its settings as one ``BenchConfig`` (``data`` a path here; it is
    copied to the target for the run)."""
    path = Path(model)
    if not path.is_file():
        raise errors.ModelError(f"model file '{path}' does not exist", "check the path")
    config.check()  # before anything is copied anywhere
    format_for_path(path)  # unknown suffixes fail here, before anything is copied anywhere
    samples = Path(config.data) if config.data is not None else None
    if samples is not None and not samples.is_file():
        raise errors.ConfigError(f"data file '{samples}' does not exist", "check the --data path")
    owned = not isinstance(target, Target)
    tgt = open_target(target) if owned else target  # type: ignore[arg-type]
    assert isinstance(tgt, Target)
    remote_data = None
    try:
        remote_model, python, env = tgt.stage(path)
        if samples is not None:
            remote_data = _stage_data(tgt, samples, remote_model)
        argv = [*python, "-m", "edgeship.runtime.bench", remote_model,
                *config.replace(data=remote_data).to_argv(), *extra_args]
        payload, res = tgt.run_json(argv, env=env, timeout=config.timeout, what=AGENT_WHAT,
                                    fix=AGENT_FIX)
        result = BenchmarkResult.from_dict(payload)
        result.target = {"name": tgt.name, "kind": type(tgt).__name__, "agent_seconds": res.duration}
        return result
    finally:
        try:
            if remote_data is not None and samples is not None and remote_data != str(samples.resolve()):
                _remove_remote(tgt, python, remote_data)
        finally:
            if owned:
                tgt.close()


def _stage_data(tgt: Target, samples: Path, remote_model: str) -> str:
    """The samples file's path on the target: the file itself here, an upload beside the model
    there (under a unique name, removed after the run)."""
    from edgeship.targets.local import LocalTarget

    if isinstance(tgt, LocalTarget):
        return str(samples.resolve())
    import posixpath
    import secrets

    remote = posixpath.join(posixpath.dirname(remote_model),
                            f".edgeship-data-{secrets.token_hex(8)}.npz")
    tgt.put(samples, remote)
    return remote


def _remove_remote(tgt: Target, python: list[str], remote: str) -> None:
    code = "import os, sys; os.remove(sys.argv[1])"
    tgt.run([*python, "-c", code, remote], timeout=60)

