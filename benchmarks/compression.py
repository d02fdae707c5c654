"""What each compression technique buys on each backend, measured on a real trained model.

One digits CNN (sklearn digits, 8x8 grey, trained here in seconds) goes through every technique;
every resulting file is evaluated the same way:
  size on disk, MACs (from the ONNX graph; IR/TFLite rows show their source graph's), top-1
  accuracy on the 360-image test split, p50 latency at 1 thread via ``edgeship.benchmark``
  (a fresh process per model, the agent's protocol), and the speed-up against fp32 on the same
  backend and against onnxruntime fp32.

Sections add rows: ``SECTIONS`` lists functions ``(ctx) -> list[Row]``; each makes its models
under ``ctx.work`` and calls ``measure``.  The quantization section is here; pruning and
distillation append theirs.

    python benchmarks/compression.py [--runs 300] [--min-seconds 1] [--only quantize]
Writes benchmarks/results/compression.json (atomically) and prints the table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from _common import ROOT, print_table, write_results

sys.path.insert(0, str(ROOT))


@dataclass
class Context:
    """What every section starts from: the trained model, its fp32 exports, the data."""

    work: Path
    torch_model: Any
    example: Any
    onnx: Path  # fp32 ONNX of torch_model
    calib: Path  # .npz, x: 200 training images
    test: Path  # .npz, x and y: the test split
    runs: int
    min_seconds: float
    x_test: Any = None
    y_test: Any = None


@dataclass
class Row:
    technique: str
    backend: str
    file: str
    size_bytes: int
    macs: Optional[int]
    accuracy: float
    p50_ms: float
    precision_run: Optional[str]  # what the backend says it computed in
    speedup: Optional[float] = None  # vs fp32 on the same backend
    speedup_vs_ort_fp32: Optional[float] = None
    notes: dict[str, Any] = field(default_factory=dict)


def build_model() -> Any:
    """Digits CNN sized so both convolutions and weights matter: conv 1->64->128 (4.8M MACs),
    a 2048->256 Linear head (~600k parameters, ~2.4 MB fp32)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * 4 * 4, 256), nn.ReLU(), nn.Linear(256, 10),
    )


def make_context(work: Path, runs: int, min_seconds: float) -> Context:
    import numpy as np
    import torch

    from tests.fixtures.models import load_digits_split, train_classifier

    data = load_digits_split()
    model = train_classifier(build_model(), data, epochs=8, lr=2e-3)
    example = torch.zeros(1, 1, 8, 8)
    import edgeship

    onnx = edgeship.export(model, "onnx", work / "digits_cnn.onnx", example_input=example,
                           data=data.x_test[:64]).path
    calib, test = work / "calib.npz", work / "test.npz"
    np.savez(calib, x=data.x_train[:200])
    np.savez(test, x=data.x_test, y=data.y_test)
    return Context(work, model, example, onnx, calib, test, runs, min_seconds,
                   data.x_test, data.y_test)


def measure(ctx: Context, technique: str, backend: str, path: Path,
            macs_from: Optional[Path] = None, **notes: Any) -> Row:
    """Size, MACs, accuracy and 1-thread p50 of one model file."""
    import edgeship
    from edgeship.converters.evaluate import accuracy, count_onnx, model_size
    from edgeship.runtime import load

    # MACs are the architecture's: counted on the fp32 source graph, which every technique here
    # keeps (quantized graphs hide them in QLinear/MatMulNBits/fp16 forms the counter may miss)
    graph = macs_from or path
    macs = count_onnx(graph).macs if graph.suffix == ".onnx" else None
    session = load(path, backend=backend)  # as deployed: the backend's own precision choice
    acc = accuracy(session, {session.inputs[0].name: ctx.x_test}, ctx.y_test).accuracy
    result = edgeship.benchmark(path, backend=backend, threads=1, runs=ctx.runs,
                                min_seconds=ctx.min_seconds)
    print(f"  {technique:<34} {backend:<12} p50 {result.latency_ms.p50:.4f} ms  acc {acc:.4f}",
          file=sys.stderr)
    return Row(technique, backend, path.name, model_size(path).bytes, macs, acc,
               result.latency_ms.p50, result.backend.precision, notes=notes)


def quantize_rows(ctx: Context) -> list[Row]:
    """fp32 on each backend, then every quantization mode edgeship offers for it."""
    import edgeship

    w, q = ctx.work, edgeship.quantize
    cal, test = ctx.calib, ctx.test
    ov_fp32 = edgeship.export(ctx.onnx, "openvino", w / "fp32.xml", data=ctx.x_test[:64]).path
    tfl_fp32 = edgeship.export(ctx.torch_model, "tflite", w / "fp32.tflite",
                               example_input=ctx.example, data=ctx.x_test[:64]).path
    rows = [
        measure(ctx, "fp32", "onnxruntime", ctx.onnx),
        measure(ctx, "fp32", "openvino", ov_fp32, ctx.onnx),
        measure(ctx, "fp32", "tflite", tfl_fp32, ctx.onnx),
    ]
    ort = {
        "int8 static QDQ u8s8 (default)": {},
        "int8 static QDQ s8s8": {"activations": "int8"},
        "int8 static QOperator u8s8": {"ort_format": "qoperator"},
        "int8 static QOperator s8s8": {"ort_format": "qoperator", "activations": "int8"},
    }
    for i, (name, kw) in enumerate(ort.items()):
        r = q(ctx.onnx, w / f"ort_static_{i}.onnx", calib=cal, **kw)
        rows.append(measure(ctx, name, "onnxruntime", r.path, ctx.onnx))
    for name, kw, fname in [
        ("int8 dynamic", {"mode": "dynamic"}, "ort_dynamic.onnx"),
        ("fp16", {"mode": "fp16"}, "ort_fp16.onnx"),
        ("int4 weight-only (MatMulNBits)", {"weights_only": "int4"}, "ort_int4.onnx"),
    ]:
        rows.append(measure(ctx, name, "onnxruntime", q(ctx.onnx, w / fname, **kw).path,
                            ctx.onnx))
    for name, kw, fname in [
        ("int8 static NNCF", {"calib": cal}, "ov_int8.xml"),
        ("int8 NNCF accuracy control (1 pt)", {"calib": cal, "data": test,
                                               "max_accuracy_drop": 1.0}, "ov_int8_ac.xml"),
        ("int4 weight-only (NNCF)", {"weights_only": "int4"}, "ov_int4.xml"),
        ("fp16 weights", {"mode": "fp16"}, "ov_fp16.xml"),
    ]:
        r = q(ctx.onnx, w / fname, backend="openvino", **kw)
        rows.append(measure(ctx, name, "openvino", r.path, ctx.onnx))
    for name, kw, fname in [
        ("int8 full-integer (PT2E)", {"calib": cal}, "tfl_int8.tflite"),
        ("fp16 weights", {"mode": "fp16"}, "tfl_fp16.tflite"),
    ]:
        r = q(ctx.torch_model, w / fname, backend="tflite", example_input=ctx.example, **kw)
        rows.append(measure(ctx, name, "tflite", r.path, ctx.onnx))
    return rows


SECTIONS: list[Callable[[Context], list[Row]]] = [quantize_rows]


def speedups(rows: list[Row]) -> None:
    base = {r.backend: r.p50_ms for r in rows if r.technique == "fp32"}
    ort = base.get("onnxruntime")
    for r in rows:
        if r.backend in base:
            r.speedup = round(base[r.backend] / r.p50_ms, 3)
        if ort:
            r.speedup_vs_ort_fp32 = round(ort / r.p50_ms, 3)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--only", help="run only the section whose function name starts so")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edgeship-compression-") as tmp:
        ctx = make_context(Path(tmp), args.runs, args.min_seconds)
        rows: list[Row] = []
        for section in SECTIONS:
            if args.only and not section.__name__.startswith(args.only):
                continue
            print(f"{section.__name__}:", file=sys.stderr)
            rows += section(ctx)
    speedups(rows)
    print_table(
        ["technique", "backend", "size KB", "MACs", "accuracy", "p50 ms", "speed-up",
         "vs ORT fp32", "ran in"],
        [[r.technique, r.backend, round(r.size_bytes / 1024, 1), r.macs, round(r.accuracy, 4),
          round(r.p50_ms, 4), r.speedup, r.speedup_vs_ort_fp32, r.precision_run] for r in rows],
    )
    write_results("compression", {
        "model": "digits CNN (conv 1-64-128, linear 2048-256-10), sklearn digits 8x8",
        "threads": 1, "runs": args.runs,
        "rows": [asdict(r) for r in rows],
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
