"""Does the label-free estimate of the accuracy drop track the true drop?

On labelled data (sklearn digits: the bundled CNN, 360 test images; Fashion-MNIST from the
Debian package dataset-fashion-mnist: the bundled CNN, 1000 test images; Magika, Google's
pretrained content-type model from PyPI, on this machine's files labelled by extension), each
candidate a
compress search would build -- fp16 (onnxruntime), bf16 (OpenVINO hint, where the CPU has it),
int8 onnxruntime QDQ u8s8 / OpenVINO NNCF / LiteRT, and structurally pruned 25 / 50 % without
retraining -- is judged twice against the original: with the labels (the true top-1 drop) and
without them (``converters.fidelity``: the estimated drop, and plain top-1 disagreement for
comparison).  Prints one row per candidate and the error of each label-free figure, and writes
benchmarks/results/fidelity_estimate.json.

    python benchmarks/fidelity_estimate.py [--only digits,fashion,magika]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from _common import ROOT, print_table, write_results

sys.path.insert(0, str(ROOT))
MODELS = ROOT / "examples" / "models"
DATA = ROOT / "examples" / "data"
CALIB = 300


def digits(work: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    sys.path.insert(0, str(ROOT / "examples"))
    from make_digits_model import load_digits_split

    split = load_digits_split()
    test = np.load(DATA / "digits_test.npz")
    return MODELS / "digits_cnn.onnx", test["x"], test["y"], split.x_train[:CALIB]


def fashion(work: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    from edgeship.runtime.manifest import read_manifest
    from edgeship.runtime.preprocess import Preprocessing

    from examples.models_zoo.fashion_mnist import load_split

    model = MODELS / "fashion_mnist_cnn.onnx"
    spec = Preprocessing.from_dict((read_manifest(model) or {})["preprocessing"])
    images, _ = load_split("train")
    pick = np.random.default_rng(0).permutation(len(images))[:CALIB]
    test = np.load(DATA / "fashion_mnist_test_1k.npz")
    return model, test["x"], test["y"], np.stack([spec.sample(images[i]) for i in pick])


def magika(work: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """Google's Magika (PyPI magika: a pretrained 214-class content-type model) on this
    machine's files labelled by their extension; every other file evaluates, the rest calibrate."""
    from examples.models_zoo import magika_content_type as mg

    model = mg.prepare(work / "magika.onnx")
    x, y, _ = mg.dataset(per_class=24)
    return model, x[::2], y[::2], x[1::2]


def _run(path: Path, x: np.ndarray, **load: Any) -> np.ndarray:
    from edgeship.converters.evaluate import predict
    from edgeship.converters.parity import NCHW_TO_NHWC
    from edgeship.runtime import load as load_model
    from edgeship.runtime.manifest import read_manifest

    session = load_model(path, threads=1, **load)
    ins = (read_manifest(path) or {}).get("inputs") or [{}]
    # a manifest with the source's layout recorded is mapped by the runtime (io_map); an older
    # one that only says NHWC is fed NHWC here
    if session.io_map is None and ins[0].get("layout") == "NHWC" and x.ndim == 4:
        x = x.transpose(NCHW_TO_NHWC)
    return predict(session, np.ascontiguousarray(x), batch_size=64)


def candidates(model: Path, calib: np.ndarray, work: Path) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """name -> a function running that candidate on samples (built lazily, one at a time)."""
    from edgeship.converters.export import export
    from edgeship.converters.onnx_to_torch import load_torch_model
    from edgeship.converters.quantize import quantize
    from edgeship.runtime import sysinfo

    example = calib[:1]

    def ort(mode: str) -> Callable[[np.ndarray], np.ndarray]:
        out = quantize(model, work / f"{mode}.onnx", mode=mode, backend="onnxruntime",  # type: ignore[arg-type]
                       calib=calib if mode == "static" else None).path
        return lambda x: _run(out, x)

    def openvino_int8(x: np.ndarray) -> np.ndarray:
        out = quantize(model, work / "int8.xml", backend="openvino", calib=calib).path
        return _run(out, x, precision="fp32")

    def bf16(x: np.ndarray) -> np.ndarray:
        out = export(model, "openvino", work / "fp32.xml").path
        return _run(out, x, precision="bf16")

    def tflite_int8(x: np.ndarray) -> np.ndarray:
        module, _ = load_torch_model(model, example)
        out = quantize(module, work / "int8.tflite", backend="tflite", calib=calib,
                       example_input=example).path
        return _run(out, x)

    def pruned(share: float) -> Callable[[np.ndarray], np.ndarray]:
        def run(x: np.ndarray) -> np.ndarray:
            import torch
            from edgeship.converters.prune import prune

            module, _ = load_torch_model(model, example)
            result = prune(module, share, structured=True, example_input=example, progress=False)
            with torch.no_grad():
                return result.model.eval()(torch.from_numpy(x)).numpy()
        return run

    found: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "fp16-onnx": lambda x: ort("fp16")(x), "int8-onnx (QDQ u8s8)": lambda x: ort("static")(x),
        "int8-openvino (NNCF)": openvino_int8, "int8-tflite (LiteRT)": tflite_int8,
        "pruned25 (no retraining)": pruned(0.25), "pruned50 (no retraining)": pruned(0.5)}
    if "avx512_bf16" in sysinfo.cpu_flags() or "amx_bf16" in sysinfo.cpu_flags():
        found["bf16-openvino"] = bf16
    return found


def run_case(name: str, load: Callable[[Path], tuple[Path, np.ndarray, np.ndarray, np.ndarray]],
             work: Path) -> dict[str, Any]:
    from edgeship.converters.fidelity import classification_figures

    model, x, y, calib = load(work)  # model file, test x, test y, calibration x
    reference = _run(model, x)
    rows = []
    for cand, run in candidates(model, calib, work).items():
        try:
            outputs = run(x)
        except Exception as exc:  # a converter that fails here is reported, the rest go on
            rows.append({"candidate": cand, "error": f"{type(exc).__name__}: {str(exc)[:160]}"})
            continue
        f = classification_figures(reference, outputs, y)
        rows.append({"candidate": cand, "true_drop": f["top1_drop"],
                     "estimated_drop": f["estimated_drop"],
                     "estimated_drop_upper": f["estimated_drop_upper"],
                     "agreement_drop": f["agreement_drop"],
                     "estimate_error": f["estimated_drop"] - f["top1_drop"],
                     "agreement_error": f["agreement_drop"] - f["top1_drop"],
                     "top5_agreement": f["top5_agreement"], "kl_divergence": f["kl_divergence"]})
    file = model.relative_to(ROOT) if model.is_relative_to(ROOT) else model.name
    return {"model": name, "file": str(file), "samples": len(x),
            "baseline_accuracy": 100.0 * float((reference.argmax(1) == y).mean()), "rows": rows}


def _errors(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    e = np.array([r[key] for r in rows if key in r])
    return {"mean_abs": float(np.abs(e).mean()), "max_abs": float(np.abs(e).max()),
            "mean_signed": float(e.mean())} if len(e) else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="digits,fashion,magika")
    args = parser.parse_args()
    cases = {"digits": ("digits CNN (sklearn digits)", digits),
             "fashion": ("Fashion-MNIST CNN", fashion),
             "magika": ("Magika content type (files labelled by extension)", magika)}
    results = []
    with tempfile.TemporaryDirectory(prefix="edgeship-bench-fidelity-") as tmp:
        for key in args.only.split(","):
            work = Path(tmp) / key
            work.mkdir()
            results.append(run_case(cases[key][0], cases[key][1], work))
    every = [r for res in results for r in res["rows"] if "true_drop" in r]
    for res in results:
        print(f"\n{res['model']}: {res['samples']} labelled test samples, "
              f"baseline top-1 {res['baseline_accuracy']:.2f} %")
        print_table(["candidate", "true drop pt", "estimated pt", "est. upper 95 %",
                     "disagreement pt", "estimate error", "top-5 agr %"],
                    [[r["candidate"], r.get("true_drop"), r.get("estimated_drop"),
                      r.get("estimated_drop_upper"), r.get("agreement_drop"),
                      r.get("estimate_error"), r.get("top5_agreement")] if "error" not in r
                     else [r["candidate"], r["error"][:60], None, None, None, None, None]
                     for r in res["rows"]])
    summary = {"estimate_error_pt": _errors(every, "estimate_error"),
               "agreement_error_pt": _errors(every, "agreement_error"), "candidates": len(every)}
    print(f"\nestimated drop - true drop over {len(every)} candidates: "
          f"{summary['estimate_error_pt']}\n"
          f"plain top-1 disagreement - true drop: {summary['agreement_error_pt']}")
    write_results("fidelity_estimate", {"threads": 1, "summary": summary, "results": results,
                                        "note": "drops in accuracy points; negative: the "
                                                "candidate scored better than the original"})


if __name__ == "__main__":
    main()
