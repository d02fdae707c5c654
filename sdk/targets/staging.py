"""Deploy a model and the on-device runtime to a device's cache over SFTP (``edgeship.deploy``,
and ``SSHTarget.stage`` before each remote benchmark).

Layout on the device (``base`` is ``~/.cache/edgeship`` unless ``--dir`` says otherwise)::

    base/<sha256 of the model file>/   the model, its manifest, companion files (.bin)
    base/runtime/<sha256 of the runtime>/edgeship/__init__.py (empty) + edgeship/runtime/...

Each directory keeps a hash manifest (``.edgeship-files.json``); a file already listed there
with the same sha256 and size is not sent again, so an unchanged model costs one remote check.
Every file is uploaded to a temporary name and renamed; the manifest is written last.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable, Optional

from edgeship.core.errors import MissingBackendError, ModelError, RemoteCommandFailed
from edgeship.runtime.formats import check_companions, files_of, format_for_path
from edgeship.runtime.manifest import manifest_path, read_manifest
from edgeship.targets.base import MIN_DEVICE_PYTHON, DeployReport, Target

MANIFEST = ".edgeship-files.json"
DeployProgress = Callable[[str, int, int], None]  # file name, bytes sent, bytes in that file


@dataclass(frozen=True)
class BundleFile:
    """One file to put on the device: from disk (``local``) or from memory (``data``)."""

    name: str  # posix path inside its bundle directory
    sha256: str
    size: int
    local: Optional[Path] = None
    data: Optional[bytes] = None


@dataclass(frozen=True)
class Bundle:
    directory: str  # relative to the cache base
    files: tuple[BundleFile, ...]


_hash_lock = threading.Lock()


@cache
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per content version (a fleet hashes the model once)."""
    st = path.stat()
    with _hash_lock:
        return _sha256_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


def _from_disk(path: Path, name: str) -> BundleFile:
    return BundleFile(name, file_sha256(path), path.stat().st_size, local=path)


def _from_bytes(data: bytes, name: str) -> BundleFile:
    return BundleFile(name, hashlib.sha256(data).hexdigest(), len(data), data=data)


def _manifest_files(model: Path) -> list[Path]:
    """The manifest beside ``model`` and the companion files it lists (names beside it only)."""
    data = read_manifest(model)  # a broken one is a ModelError naming it
    if data is None:
        return []
    manifest, listed = manifest_path(model), data.get("files") or []
    if not isinstance(listed, list):
        raise ModelError(f"manifest '{manifest.name}' lists its files wrongly ('files' is not a "
                         "list)", "re-export the model to write a fresh manifest")
    extra = [model.parent / n for n in listed
             if isinstance(n, str) and n == posixpath.basename(n) and n not in ("", ".", "..")]
    return [manifest, *[p for p in extra if p.is_file() and p.name != model.name]]


def model_bundle(model: Path) -> Bundle:
    """The model, its manifest, the files the manifest lists, and its companion files and
    external data (formats table: an OpenVINO .xml's .bin, an ONNX file's .data)."""
    format_for_path(model)  # unknown suffixes fail before anything is sent
    check_companions(model)
    paths = [*files_of(model), *_manifest_files(model)]
    unique = list(dict.fromkeys(paths))
    return Bundle(file_sha256(model), tuple(_from_disk(p, p.name) for p in unique))


@cache
def runtime_bundle() -> Bundle:
    """``edgeship.runtime`` (stdlib + numpy) plus an empty ``edgeship/__init__.py``."""
    import edgeship.runtime

    root = Path(edgeship.runtime.__file__).parent
    files = [_from_bytes(b"", "edgeship/__init__.py")]
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files.append(_from_disk(path, "edgeship/runtime/" + path.relative_to(root).as_posix()))
    key = hashlib.sha256("".join(f"{f.name}\0{f.sha256}\n" for f in files).encode()).hexdigest()
    return Bundle(f"runtime/{key}", tuple(files))


def _preflight(target: Target, bundles: list[Bundle], base: str) -> dict[str, Any]:
    request = {
        "base": base,
        "min_python": list(MIN_DEVICE_PYTHON),
        "dirs": {b.directory: {f.name: [f.sha256, f.size] for f in b.files} for b in bundles},
        "check_numpy": False,
    }
    # warm path: no site import; everything present means an earlier deploy checked numpy
    info = target.run_script("preflight", json.dumps(request), what="the deploy check",
                             flags=["-S"], watched=False)  # short, bounded: no watchdog
    if info.get("venv_python") and target.python == "python3":
        # The device was provisioned (`--provision`): its venv has numpy and the backends, so
        # later runs use it without being told again.
        target.use_python(info["venv_python"])
    if not info.get("error") and not any(info.get("missing", {}).values()):
        return info
    request["check_numpy"] = True
    info = target.run_script("preflight", json.dumps(request), what="the deploy check",
                             watched=False)
    if info.get("numpy") is None:
        raise MissingBackendError(
            f"{target.name}'s {target.python} (Python {info.get('python')}, "
            f"{info.get('executable')}) has no numpy, which edgeship's runtime needs",
            "on the device: python3 -m pip install numpy (or apt install python3-numpy), "
            "or rerun with --provision",
        )
    if info.get("error"):
        raise RemoteCommandFailed(
            f"cannot prepare {base} on {target.name}: {info['error']}",
            "check permissions there, or deploy elsewhere with --dir",
        )
    return info


def deploy_to(target: Target, model: Path, progress: Optional[DeployProgress] = None,
              remote_dir: Optional[str] = None) -> DeployReport:
    """Put ``model`` and the runtime on an open target (in its ``remote_dir`` unless another
    is given), skipping what is already there."""
    start = time.perf_counter()
    model = Path(model)
    if not model.is_file():
        raise ModelError(f"model file '{model}' does not exist", "check the path")
    bundles = [model_bundle(model), runtime_bundle()]
    info = _preflight(target, bundles, remote_dir or target.remote_dir)
    base = info["base"]
    todo = [(b, f) for b in bundles for f in b.files if f.name in info["missing"][b.directory]]
    need = sum(f.size for _, f in todo)
    if need > info["free_bytes"]:
        raise RemoteCommandFailed(
            f"{target.name} has {info['free_bytes']:,} bytes free in {base}; this deploy needs "
            f"{need:,}",
            "free space on the device, or deploy to a larger file system with --dir",
        )
    report = DeployReport(
        target=target.name, base=base, python=info["python"], numpy=info.get("numpy"),
        model_path=posixpath.join(base, bundles[0].directory, model.name),
        runtime_path=posixpath.join(base, bundles[1].directory),
        bytes_total=sum(f.size for b in bundles for f in b.files),
    )
    for bundle in bundles:
        sent = [f for b, f in todo if b is bundle]
        directory = posixpath.join(base, bundle.directory)
        for f in sent:
            remote = posixpath.join(directory, f.name)
            if f.data is not None:
                target.put_bytes(f.data, remote)
            else:
                assert f.local is not None
                callback = (lambda done, total, n=f.name: progress(n, done, total)) \
                    if progress else None
                target.put(f.local, remote, callback)
            report.files_sent.append(f.name)
            report.bytes_sent += f.size
        report.files_skipped += [f.name for f in bundle.files if f not in sent]
        if sent:  # the manifest last: it vouches only for files that are complete
            entries = dict(info["manifests"].get(bundle.directory) or {})
            entries.update({f.name: {"sha256": f.sha256, "size": f.size} for f in bundle.files})
            target.put_bytes(json.dumps(entries, indent=1).encode(),
                             posixpath.join(directory, MANIFEST))
    report.seconds = time.perf_counter() - start
    return report
