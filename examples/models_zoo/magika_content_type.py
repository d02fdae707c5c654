"""Magika (Google): a real pretrained ONNX model that tells a file's content type from its bytes.

The PyPI package ``magika`` (Apache-2.0) ships ``models/standard_v3_3/model.onnx`` (3.2 MB,
214 content types) and its config (labels, feature sizes).  This module reads both from the
installed package -- nothing is downloaded -- and re-implements the feature extraction (the
first and last 1024 bytes after stripping whitespace, padded with token 256) so edgeship can
benchmark, quantize and evaluate the model like any other:

    input  "bytes"        int32 (N, 2048)
    output "target_label" float32 (N, 214) probabilities

Real labelled data: files already on this machine (the Python installation, /usr/share/doc,
/usr/include, /etc), labelled by their extension (.py -> python, .png -> png, ...).  The label
from the extension is sometimes not what the bytes say (a .txt holding reStructuredText), so
accuracy against it is high but not 100 %; agreement with the magika package's own answer on
the same files is the exactness check for the feature extraction.

    python examples/models_zoo/magika_content_type.py prepare -o /tmp/magika.onnx
    python examples/models_zoo/magika_content_type.py data -o /tmp/magika_files.npz
    python examples/models_zoo/magika_content_type.py check
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.models_zoo.common import write_manifest  # noqa: E402

MODEL_DIR = "models/standard_v3_3"
# extension -> magika label, for the file types a Linux machine with Python has plenty of
EXTENSION_LABELS = {
    ".py": "python", ".json": "json", ".gz": "gzip", ".html": "html", ".c": "c", ".md": "markdown",
    ".png": "png", ".css": "css", ".xml": "xml", ".csv": "csv", ".pem": "pem", ".sh": "shell",
    ".gif": "gif", ".jpg": "jpeg", ".so": "elf", ".pyc": "pythonbytecode", ".rst": "rst",
    ".onnx": "onnx", ".pl": "perl", ".cpp": "cpp", ".js": "javascript", ".wav": "wav",
    ".npy": "npy", ".f90": "fortran", ".cmake": "cmake", ".jinja": "jinja",
}
WHITESPACE = b" \t\n\r\x0b\x0c"  # what bytes.strip() removes, as magika does


def package_dir() -> Path:
    try:
        import magika
    except ImportError:
        raise SystemExit("pip install magika (it ships the model)") from None
    return Path(magika.__file__).parent / MODEL_DIR


def config() -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads((package_dir() / "config.min.json").read_text())
    return cfg


def features(path: Path, cfg: dict[str, Any]) -> Optional[np.ndarray]:
    """The model input for one file, or None where magika would not run the model (too few
    bytes after stripping whitespace)."""
    beg_size, end_size, pad, block = (cfg["beg_size"], cfg["end_size"], cfg["padding_token"],
                                      cfg["block_size"])
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(min(block, size))
        f.seek(size - min(block, size))
        tail = f.read(min(block, size))
    beg = list(head.lstrip(WHITESPACE)[:beg_size])
    end = list(tail.rstrip(WHITESPACE)[-end_size:]) if end_size else []
    beg += [pad] * (beg_size - len(beg))
    end = [pad] * (end_size - len(end)) + end
    if beg[cfg["min_file_size_for_dl"] - 1] == pad:
        return None
    return np.asarray(beg + end, np.int32)


def collect_files(per_class: int = 12, roots: Optional[list[Path]] = None) -> list[tuple[Path, str]]:
    """Up to ``per_class`` regular files per extension in EXTENSION_LABELS, in sorted path order."""
    # the interpreter's own library first (in a venv, the base one too: a venv's lib holds few)
    prefixes = dict.fromkeys([Path(sys.prefix), Path(sys.base_prefix)])
    roots = roots or [*(p / "lib" for p in prefixes), Path("/usr/share/doc"),
                      Path("/usr/include"), Path("/etc")]
    found: dict[str, list[Path]] = {label: [] for label in EXTENSION_LABELS.values()}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            if all(len(paths) == per_class for paths in found.values()):
                break
            dirs.sort()
            for name in sorted(files):
                label = EXTENSION_LABELS.get(Path(name).suffix.lower())
                path = Path(folder) / name
                if label and len(found[label]) < per_class and not path.is_symlink() \
                        and path.is_file() and path.stat().st_size >= 512:
                    found[label].append(path)
    return [(p, label) for label, paths in found.items() for p in paths]


def dataset(per_class: int = 12) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """x int32 (N, 2048), y label indices (N,), and the files, from this machine's files."""
    cfg = config()
    index = {label: i for i, label in enumerate(cfg["target_labels_space"])}
    rows, labels, paths = [], [], []
    for path, label in collect_files(per_class):
        x = features(path, cfg)
        if x is not None:
            rows.append(x)
            labels.append(index[label])
            paths.append(path)
    return np.stack(rows), np.asarray(labels, np.int64), paths


def prepare(out: Path) -> Path:
    """Copy the package's model beside a manifest (labels, no image preprocessing)."""
    source = package_dir() / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out)
    import magika

    write_manifest(out, preprocessing=None, labels=list(config()["target_labels_space"]),
                   source=source, layout=None,
                   steps=[{"step": "copy", "config": {"package": f"magika {magika.__version__}",
                                                      "file": f"{MODEL_DIR}/model.onnx"}}])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Magika content-type model")
    parser.add_argument("command", choices=["prepare", "data", "check"])
    parser.add_argument("-o", "--out", type=Path)
    parser.add_argument("--per-class", type=int, default=12)
    args = parser.parse_args()
    if args.command == "prepare":
        print(prepare(args.out or Path("magika_standard_v3_3.onnx")))
    elif args.command == "data":
        from edgeship.core.io import write_atomic

        x, y, _ = dataset(args.per_class)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, x=x, y=y)
        print(write_atomic(args.out or Path("magika_files.npz"), buffer.getvalue()))
    else:
        from edgeship.runtime import load
        from magika import Magika

        x, y, paths = dataset(args.per_class)
        session = load(package_dir() / "model.onnx")
        predicted = session.run({"bytes": x})["target_label"].argmax(1)
        labels = config()["target_labels_space"]
        reference = [str(r.dl.label) for r in Magika().identify_paths(paths)]
        print(json.dumps({"files": len(y), "accuracy_vs_extension": float((predicted == y).mean()),
                          "agreement_with_magika": float(np.mean(
                              [labels[p] == r for p, r in zip(predicted, reference)]))}))


if __name__ == "__main__":
    main()
