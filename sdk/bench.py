"""Host side of a measurement: stage the model on a target, run the agent, parse its JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from edgeship.core import errors
from edgeship.runtime.bench import (
    DEFAULT_MIN_SECONDS,
    DEFAULT_RUNS,
    DEFAULT_WARMUP,
    BenchmarkResult,
)
from edgeship.runtime.formats import format_for_path
from edgeship.targets import Target, open_target

if TYPE_CHECKING:
    from edgeship.runtime.inputs import InputFill


def agent_args(
    *,
    backend: Optional[str] = None,
    threads: Optional[int] = None,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
    precision: Optional[str] = None,
    seed: int = 0,
    fills: Optional[dict[str, InputFill]] = None,
    data: Optional[str] = None,
) -> list[str]:
    """The agent's command-line flags for these settings (argv items, never a shell string);
    ``data`` is the samples file's path on the target."""
    args = ["--warmup", str(warmup), "--runs", str(runs), "--min-seconds", str(min_seconds),
            "--seed", str(seed)]
    if backend:
        args += ["--backend", backend]
    if threads:
        args += ["--threads", str(threads)]
    if precision:
        args += ["--precision", precision]
    for name, shape in (input_shapes or {}).items():
        args += ["--input-shape", f"{name}={','.join(map(str, shape))}"]
    if fills:
        from edgeship.runtime.inputs import fill_args

        args += fill_args(fills)
    if data:
        args += ["--data", data]
    return args


def parse_agent_output(stdout: str, stderr: str, exit_code: int, where: str) -> BenchmarkResult:
    """Turn the agent's one JSON object back into a result, or re-raise its error here."""
    lines = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    try:
        payload: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        payload = {}
    error = payload.get("error")
    if error:
        cls = getattr(errors, error.get("type", ""), None)
        if not (isinstance(cls, type) and issubclass(cls, errors.EdgeshipError)):
            cls = errors.RemoteCommandFailed
        problem = error.get("problem", "the agent failed")
        if where != "local":  # "pip install onnxruntime" is for the device, not this host
            problem = f"on {where}: {problem}"
        raised = cls(problem, error.get("fix", ""))
        if isinstance(error.get("traceback"), str):  # the agent's own bug: the CLI saves it
            raised.traceback_text = error["traceback"]
        raise raised
    if exit_code != 0 or not payload:
        tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no output"
        if exit_code in (137, -9):
            raise errors.RemoteCommandFailed(
                f"the measurement agent on {where} was killed (exit {exit_code}, out of memory?): "
                f"{tail}",
                "give the device more memory or measure a smaller model",
            )
        raise errors.RemoteCommandFailed(
            f"the measurement agent on {where} failed (exit {exit_code}): {tail}",
            "run it by hand with python -m edgeship.runtime.bench to see the full error",
        )
    return BenchmarkResult.from_dict(payload)


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
    path = Path(model)
    if not path.is_file():
        raise errors.ModelError(f"model file '{path}' does not exist", "check the path")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise errors.ConfigError(f"timeout must be a positive finite number of seconds, got "
                                 f"{timeout}", "pass e.g. --timeout 600")
    format_for_path(path)  # unknown suffixes fail here, before anything is copied anywhere
    samples = Path(data) if data is not None else None
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
        argv = [*python, "-m", "edgeship.runtime.bench", remote_model, *agent_args(
            backend=backend, threads=threads, warmup=warmup, runs=runs, min_seconds=min_seconds,
            input_shapes=input_shapes, precision=precision, seed=seed, fills=fills,
            data=remote_data), *extra_args]
        res = tgt.run(argv, env=env, timeout=timeout)
        result = parse_agent_output(res.stdout, res.stderr, res.exit_code, tgt.name)
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
