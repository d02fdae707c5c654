"""Before a deploy: check the device's Python, make the cache directories, say what is missing.

The host runs it with ``python3 -S`` first (no site import: the warm path of a re-run costs a
few milliseconds); only when files are missing does it run it again with site-packages to check
for numpy, so a cold deploy still learns whether the runtime can run at all.

Invoked as ``python3 -c SOURCE REQUEST_JSON``; prints one JSON object.  The request names the
cache base (``~`` allowed), the minimum Python, and per directory the files wanted with their
sha256 and size.  A file counts as present when the directory's hash manifest
(``.edgeship-files.json``, written by the host after a complete upload) lists the same sha256
and the file has that size, so nothing is hashed on the device.  Upload temporaries untouched
for ``stale_seconds`` (left by a client that lost its connection) are removed.
"""

import json
import os
import sys
import time

MANIFEST = ".edgeship-files.json"
TEMP_MARK = ".edgeship-tmp-"


def version_of(module):
    try:
        from importlib import metadata

        return metadata.version(module)
    except Exception:
        return "installed"


def has_module(name):
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def sweep(directory, stale_seconds):
    removed = []
    now = time.time()
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            try:
                if TEMP_MARK in name and now - os.stat(path).st_mtime > stale_seconds:
                    os.remove(path)
                    removed.append(path)
            except OSError:
                pass
    return removed


def read_manifest(directory):
    try:
        with open(os.path.join(directory, MANIFEST)) as f:
            entries = json.load(f)
        return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError):
        return {}


def present(directory, manifest, name, sha256, size):
    entry = manifest.get(name)
    if not isinstance(entry, dict) or entry.get("sha256") != sha256:
        return False
    try:
        return os.path.getsize(os.path.join(directory, name)) == size
    except OSError:
        return False


def check_dirs(request, out):
    base = os.path.abspath(os.path.expanduser(request["base"]))
    out.update(base=base, missing={}, manifests={}, swept=[])
    for rel, files in sorted(request["dirs"].items()):
        directory = os.path.join(base, rel)
        for name in files:
            os.makedirs(os.path.dirname(os.path.join(directory, name)), mode=0o700, exist_ok=True)
        out["swept"] += sweep(directory, request.get("stale_seconds", 600))
        manifest = read_manifest(directory)
        out["manifests"][rel] = manifest
        out["missing"][rel] = [name for name, (sha256, size) in sorted(files.items())
                               if not present(directory, manifest, name, sha256, size)]
    stat = os.statvfs(base)
    out["free_bytes"] = stat.f_bavail * stat.f_frsize


def main():
    request = json.loads(sys.argv[1])
    out = {"python": ".".join(str(v) for v in sys.version_info[:3]),
           "executable": sys.executable}  # type: dict
    venv_python = os.path.join(os.path.expanduser(request["base"]), "venv", "bin", "python")
    if os.access(venv_python, os.X_OK):  # made by `edgeship provision`
        out["venv_python"] = os.path.abspath(venv_python)
    if tuple(sys.version_info[:2]) < tuple(request["min_python"]):
        out["too_old"] = True
    else:
        if request.get("check_numpy"):
            out["numpy"] = version_of("numpy") if has_module("numpy") else None
        try:
            check_dirs(request, out)
        except OSError as exc:
            out["error"] = str(exc.strerror or exc) + ": " + str(exc.filename or "")
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
