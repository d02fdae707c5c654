"""Parity: does a converted model compute what its source computes?

Both models run the same samples (seeded random inputs, plus real samples when given); each
output is compared with ``agreement_of``: max abs diff, cosine similarity per sample,
top-1 agreement (gated only for (N, classes) outputs, where it means something).  A figure beyond
the tolerance of the export's precision raises ``OutputMismatchError`` naming the output and
the figures (exit code 4 at the CLI).

Layouts: a candidate that transposed its source's tensors (onnx2tf's NHWC TFLite) is run
through the mapping its manifest records (``edgeship.runtime.iomap``), so both models take and
return the source's layout here; an output whose shape still differs is a mismatch.

Example:
    >>> report = check_parity(torch_runner, session_runner(sess), samples,
    ...                       tolerance=TOLERANCES["fp32"], output_names=["logits"])  # doctest: +SKIP
    >>> report.outputs[0].max_abs_diff                                              # doctest: +SKIP
    3.1e-07
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
from edgeship.core.errors import ConfigError, OutputMismatchError
from edgeship.runtime.session import TensorSpec


@dataclass(frozen=True)
class Agreement:
    """How closely a candidate reproduces the original's outputs on the same inputs."""

    top1: Optional[float]  # share of samples whose argmax is the same; None: not class scores
    cosine_mean: float  # per-sample cosine similarity of the flattened outputs
    cosine_min: float
    max_abs_diff: float
    samples: int


def agreement_of(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    """Compare two models' outputs on the same samples."""
    if reference.shape != candidate.shape:
        raise ConfigError(
            f"outputs have shapes {reference.shape} and {candidate.shape}",
            "compare models with the same output",
        )
    a = reference.reshape(len(reference), -1).astype(np.float64)
    b = candidate.reshape(len(candidate), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = (a * b).sum(1)
    # two all-zero outputs agree perfectly; one zero against non-zero does not
    cosine = np.where(norms > 0, dots / np.where(norms > 0, norms, 1), (norms == 0) * 1.0)
    # one value per sample has no argmax to agree on: it would read 100 % whatever changed
    return Agreement(
        top1=float((a.argmax(1) == b.argmax(1)).mean()) if a.shape[1] > 1 else None,
        cosine_mean=float(cosine.mean()),
        cosine_min=float(cosine.min()),
        max_abs_diff=float(np.abs(a - b).max()),
        samples=len(a),
    )

Runner = Callable[[list[np.ndarray]], list[np.ndarray]]  # positional inputs -> positional outputs
CHUNK = 16  # samples per run for a model with a dynamic batch (run_batched)
Perm = Optional[tuple[int, ...]]
NCHW_TO_NHWC: tuple[int, ...] = (0, 2, 3, 1)
NHWC_TO_NCHW: tuple[int, ...] = (0, 3, 1, 2)


@dataclass(frozen=True)
class Tolerance:
    """Limits one output must meet: max abs diff <= atol + rtol * max |reference|, the lowest
    per-sample cosine (and, when set, the mean one), the top-1 agreement.  ``atol`` None: values
    are not gated (integer quantization changes them by design; cosine and top-1 still are)."""

    atol: Optional[float]
    rtol: float
    min_cosine: float
    min_top1: float
    min_cosine_mean: Optional[float] = None

    def allowed(self, reference: np.ndarray) -> Optional[float]:
        if self.atol is None:
            return None
        return self.atol + self.rtol * float(np.abs(reference).max(initial=0.0))


# Keyed by what the export changes.  "exact": the same float32 graph in another container
# (torch -> ONNX); "fp32": another runtime's float32 kernels; fp16/int8: reduced precision.
TOLERANCES: dict[str, Tolerance] = {
    "exact": Tolerance(atol=1e-4, rtol=1e-6, min_cosine=0.99999, min_top1=1.0),
    "fp32": Tolerance(atol=1e-3, rtol=1e-5, min_cosine=0.9999, min_top1=1.0),
    "fp16": Tolerance(atol=1e-2, rtol=1e-2, min_cosine=0.999, min_top1=0.95),
    # int8 noise spreads over the hardest samples, so the lowest cosine falls as samples are
    # added (EfficientNet-Lite0's full-int8 TFLite on 140 photo crops: mean 0.9895, lowest 0.971,
    # the same as onnx2tf's own int8); the mean is the gate that does not depend on how many,
    # and the lowest still catches a conversion that breaks some inputs (a wrong layout: < 0.5).
    # Top-1 flips between near-tied classes are what int8 does, not a conversion error (82 % of
    # those crops keep their top-1; the fidelity judge estimates what flips cost): only a
    # minority agreeing is one.
    "int8": Tolerance(atol=None, rtol=0.0, min_cosine=0.9, min_top1=0.5, min_cosine_mean=0.98),
}


@dataclass
class Samples:
    """Parity inputs, one array per model input with samples along axis 0 (reference layout).

    ``per_sample``: the model cannot take a batch along axis 0 (a rank-0 input such as a sample
    rate, a recurrent state shaped ``[2, batch, 128]``): each array then holds the samples
    stacked along a NEW leading axis, and runners are fed one sample at a time."""

    arrays: list[np.ndarray]
    random: int
    real: int
    source: Optional[str] = None  # where the real samples came from
    per_sample: bool = False

    def __len__(self) -> int:
        return self.random + self.real


@dataclass
class OutputParity:
    name: str
    max_abs_diff: float
    allowed_abs_diff: Optional[float]
    cosine_min: float
    cosine_mean: float
    top1: Optional[float]  # None when the output is not (N, classes)
    ok: bool
    failed: list[str] = field(default_factory=list)


@dataclass
class ParityReport:
    reference: str
    candidate: str
    tolerance: Tolerance
    samples: int
    random: int
    real: int
    real_source: Optional[str]
    outputs: list[OutputParity]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}

    def summary(self) -> str:
        return "; ".join(
            f"{o.name}: max abs diff {o.max_abs_diff:.3g}, cosine min {o.cosine_min:.6f}"
            + (f", top-1 {100 * o.top1:.1f}%" if o.top1 is not None else "")
            for o in self.outputs
        )


def make_samples(
    inputs: Sequence[TensorSpec],
    *,
    random: int = 8,
    data: Any = None,
    max_real: int = 64,
    seed: int = 0,
    fixed: Optional[dict[str, tuple[int, ...]]] = None,
    fills: Optional[dict[str, Any]] = None,
) -> Samples:
    """``random`` seeded random samples plus up to ``max_real`` real ones from ``data``
    (anything ``edgeship.Dataset`` reads: an .npz path, an array, an iterable).

    Random samples have the shapes ``fixed`` gives (``--input-shape``; a dynamic batch is 1) and
    the values ``fills`` says (``--input-value``/``--input-range``: runtime.inputs.InputFill)."""
    from edgeship.runtime.inputs import random_inputs, resolve_shapes

    shapes = resolve_shapes(inputs, fixed) if random else {}
    per_sample = not batchable(inputs, shapes)
    specs = [TensorSpec(s.name, (1, *s.shape[1:]), s.dtype) if s.shape and not per_sample
             else s for s in inputs]
    columns: list[list[np.ndarray]] = [[] for _ in specs]
    for i in range(random):
        feeds = random_inputs(inputs, seed=seed + i, fixed=shapes, fills=fills)
        for col, spec in zip(columns, specs):
            col.append(feeds[spec.name])
    real, source = 0, None
    if data is not None:
        from edgeship.core.data import Dataset

        dataset = (data if isinstance(data, Dataset) else Dataset(data)).for_model(specs)
        source = dataset.source
        for feeds, _ in dataset:
            if real >= max_real:
                break
            for col, spec in zip(columns, specs):
                col.append(feeds[spec.name] if per_sample else feeds[spec.name][None])
            real += 1
    if random + real == 0:
        raise ConfigError("parity needs at least one sample", "ask for random samples or pass data")
    join = np.stack if per_sample else np.concatenate
    return Samples([join(col) for col in columns], random, real, source, per_sample)


def batchable(inputs: Sequence[TensorSpec], shapes: dict[str, tuple[int, ...]]) -> bool:
    """Samples can be stacked along axis 0: every input has a batch axis there (dynamic, or a
    fixed batch of 1) -- not a rank-0 scalar nor a fixed leading dimension such as an RNN's
    layer axis."""
    for spec in inputs:
        if not spec.shape:
            return False
        d = spec.shape[0]
        if isinstance(d, int) and d > 1:
            return False
    return True


def run_batched(runner: Runner, arrays: list[np.ndarray], batch: Optional[int],
                per_sample: bool = False) -> list[np.ndarray]:
    """Run all samples through ``runner`` in chunks of ``batch`` (a model with a dynamic batch,
    None: ``CHUNK`` at a time, which bounds the runtime's activation memory: 72 EfficientNet-Lite0
    crops at once held 0.9 GB in onnxruntime); a last short chunk is padded with its final
    sample and the padding dropped again.
    ``per_sample`` (see ``Samples``): one sample per run, outputs stacked on a new axis."""
    if per_sample:
        outs = []
        for i in range(len(arrays[0])):
            # np.ascontiguousarray would turn a rank-0 scalar (a sample rate) into shape (1,)
            outs.append(runner([np.require(a[i], requirements="C") for a in arrays]))
        return [np.stack(parts) for parts in zip(*outs)]
    total = len(arrays[0])
    step = batch or min(total, CHUNK)
    chunks: list[list[np.ndarray]] = []
    for start in range(0, total, step):
        part = [a[start:start + step] for a in arrays]
        short = step - len(part[0])
        if short:
            part = [np.concatenate([p, np.repeat(p[-1:], short, axis=0)]) for p in part]
        out = runner([np.ascontiguousarray(p) for p in part])
        chunks.append([o[: len(o) - short] if short else o for o in out])
    return [np.concatenate(parts) for parts in zip(*chunks)]


def check_parity(
    reference: Runner,
    candidate: Runner,
    samples: Samples,
    *,
    tolerance: Tolerance,
    output_names: Sequence[str],
    reference_name: str = "reference",
    candidate_name: str = "candidate",
    reference_batch: Optional[int] = None,
    candidate_batch: Optional[int] = None,
    raise_on_mismatch: bool = True,
) -> ParityReport:
    """Compare ``candidate`` with ``reference`` output by output (positionally)."""

    expected = run_batched(reference, samples.arrays, reference_batch,
                           per_sample=samples.per_sample)
    got = run_batched(candidate, samples.arrays, candidate_batch, per_sample=samples.per_sample)
    return compare_outputs(expected, got, samples, tolerance=tolerance, output_names=output_names,
                           reference_name=reference_name, candidate_name=candidate_name,
                           raise_on_mismatch=raise_on_mismatch)


def compare_outputs(
    expected: list[np.ndarray],
    got: list[np.ndarray],
    samples: Samples,
    *,
    tolerance: Tolerance,
    output_names: Sequence[str],
    reference_name: str = "reference",
    candidate_name: str = "candidate",
    raise_on_mismatch: bool = True,
) -> ParityReport:
    """``check_parity`` on outputs already computed on ``samples``."""
    if len(got) != len(expected):
        raise OutputMismatchError(
            f"{candidate_name} has {len(got)} outputs, {reference_name} has {len(expected)}",
            "check the export kept every output of the model",
        )
    results = []
    for name, ref, out in zip(output_names, expected, got):
        if out.shape != ref.shape:
            raise OutputMismatchError(
                f"output '{name}' has shape {out.shape} in {candidate_name}, {ref.shape} in "
                f"{reference_name}", "check the layout of the exported model's outputs")
        results.append(_judge(name, agreement_of(ref, out), ref, tolerance))
    report = ParityReport(reference_name, candidate_name, tolerance, len(samples), samples.random,
                          samples.real, samples.source, results)
    if raise_on_mismatch and not report.ok:
        bad = next(o for o in results if not o.ok)
        raise OutputMismatchError(
            f"{candidate_name} differs from {reference_name} on output '{bad.name}' over "
            f"{len(samples)} samples: {', '.join(bad.failed)}",
            "keep a higher precision, calibrate on real data (--data), or report the model",
        )
    return report


def _judge(name: str, agreement: Any, ref: np.ndarray, tol: Tolerance) -> OutputParity:
    classes = ref.ndim == 2 and ref.shape[1] > 1
    top1 = agreement.top1 if classes else None
    allowed = tol.allowed(ref)
    failed = []
    if allowed is not None and not agreement.max_abs_diff <= allowed:
        failed.append(f"max abs diff {agreement.max_abs_diff:.3g} > {allowed:.3g}")
    if not agreement.cosine_min >= tol.min_cosine:
        failed.append(f"cosine {agreement.cosine_min:.6f} < {tol.min_cosine}")
    if tol.min_cosine_mean is not None and not agreement.cosine_mean >= tol.min_cosine_mean:
        failed.append(f"mean cosine {agreement.cosine_mean:.6f} < {tol.min_cosine_mean}")
    if top1 is not None and not top1 >= tol.min_top1:
        failed.append(f"top-1 agreement {100 * top1:.1f}% < {100 * tol.min_top1:.0f}%")
    return OutputParity(name, agreement.max_abs_diff, allowed, agreement.cosine_min,
                        agreement.cosine_mean, top1, not failed, failed)


def session_runner(session: Any, input_names: Optional[Sequence[str]] = None,
                   output_names: Optional[Sequence[str]] = None) -> Runner:
    """A runtime Session as a positional Runner.

    With ``input_names``/``output_names`` (the reference's, in its order) tensors are matched
    by NAME whenever the session has the same names: a converter may reorder inputs and
    outputs (onnx2tf sorts them), and position would then pair the wrong tensors.  A session
    with other names (a converter that renamed them) is matched by position."""
    own_in = [s.name for s in session.inputs]
    own_out = [s.name for s in session.outputs]
    in_names = list(input_names) if input_names is not None and sorted(input_names) == sorted(
        own_in) else own_in
    out_names = list(output_names) if output_names is not None and sorted(output_names) == sorted(
        own_out) else own_out

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        out = session.run(dict(zip(in_names, arrays)))
        return [out[n] for n in out_names]

    return run


def fixed_batch(specs: Sequence[TensorSpec]) -> Optional[int]:
    """The batch size a model insists on, or None for a dynamic batch."""
    dim = specs[0].shape[0] if specs and specs[0].shape else None
    return dim if isinstance(dim, int) and dim > 0 else None


def session_batch(session: Any) -> Optional[int]:
    """The batch to run a Session with: the one it insists on, else all at once -- except a
    TFLite model, whose interpreter keeps the batch its tensors were allocated with (1 for a
    dynamic batch): it runs sample by sample."""
    fixed = fixed_batch(session.inputs)
    if fixed is None and session.info.backend == "tflite":
        return 1
    return fixed

