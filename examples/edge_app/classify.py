"""A tiny edge application: classify every image in a folder with an edgeship-exported model.

Needs only numpy, one backend (onnxruntime, OpenVINO or LiteRT) and ``edgeship.runtime``
copied beside it (``edgeship deploy`` puts it on the device; no other part of edgeship, no
Pillow: PNG/PGM/PPM decode with numpy).  The model's manifest supplies the preprocessing the
accuracy was measured with and the class names, so the device sees exactly those inputs.

    python classify.py [MODEL] [FOLDER] [--threads N] [--json]

With a ``labels.csv`` (``filename,label``) in FOLDER it also prints the accuracy.
Exit codes: 0 ok, 2 bad input, 4 missing dependency (e.g. a JPEG without Pillow).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE.parent / "models" / "fashion_mnist_cnn.onnx"
DEFAULT_IMAGES = HERE / "images"


def softmax(logits):  # type: ignore[no-untyped-def]
    import numpy as np

    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def classify(model: Path, folder: Path, threads: int = 1) -> list[dict[str, object]]:
    """One {file, class, label, score} per image, in file-name order."""
    from edgeship.runtime import ConfigError, load
    from edgeship.runtime.images import IMAGE_SUFFIXES

    session = load(model, threads=threads)
    names = (session.manifest or {}).get("labels")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"no images in '{folder}'", "put PNG/PGM/PPM files (or JPEG with Pillow) there")
    results = []
    for path in files:
        scores = softmax(next(iter(session.run_raw(path).values()))[0])
        best = int(scores.argmax())
        results.append({"file": path.name, "class": best,
                        "label": names[best] if names else str(best), "score": float(scores[best])})
    return results


def read_truth(folder: Path) -> dict[str, str]:
    path = folder / "labels.csv"
    if not path.is_file():
        return {}
    rows = [r for r in csv.reader(path.read_text().splitlines()) if len(r) == 2]
    return {name: label for name, label in rows if name != "filename"}


def main() -> int:
    parser = argparse.ArgumentParser(description="Classify the images in a folder.")
    parser.add_argument("model", nargs="?", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()

    from edgeship.runtime import EdgeshipError

    try:
        if not args.folder.is_dir():
            from edgeship.runtime import ConfigError

            raise ConfigError(f"'{args.folder}' is not a folder", "pass a folder of images")
        results = classify(args.model, args.folder, args.threads)
    except EdgeshipError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    truth = read_truth(args.folder)
    scored = [r for r in results if r["file"] in truth]
    accuracy = (sum(truth[str(r["file"])] == r["label"] for r in scored) / len(scored)
                if scored else None)
    if args.json:
        print(json.dumps({"results": results, "accuracy": accuracy, "labelled": len(scored)}))
    else:
        for r in results:
            print(f"{r['file']:40s} {r['label']:>14s}  {r['score']:.3f}")
        if accuracy is not None:
            print(f"accuracy {accuracy:.3f} on {len(scored)} labelled images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
