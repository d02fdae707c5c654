"""Shared fixtures.  Fixture modules live in tests/fixtures/ and are listed here."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Keep backends from oversubscribing the 2-core CI machine while tests run in one process.
os.environ.setdefault("OMP_NUM_THREADS", "2")

# compress caches built candidates under ~/.cache/edgeship: tests (and the CLI processes they
# start, which inherit the environment) use a cache of their own, removed at the end
if "EDGESHIP_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="edgeship-test-cache-")
    os.environ["EDGESHIP_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, True)

pytest_plugins: list[str] = [
    "tests.fixtures.onnx_graphs",
    "tests.fixtures.models",
    "tests.fixtures.sshd",
    "tests.fixtures.netdevice",
    "tests.fixtures.arm64",
]
