"""Shared fixtures.  Fixture modules live in tests/fixtures/ and are listed here."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Keep backends from oversubscribing the 2-core CI machine while tests run in one process.
os.environ.setdefault("OMP_NUM_THREADS", "2")

# compress caches built candidates under ~/.cache/edgeship/candidates: tests (and the CLI
# processes they start, which inherit the environment) use a cache of their own, removed at the
# end; the tools installed beside it (the onnx2tf venv) stay where they are
if "EDGESHIP_CANDIDATE_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="edgeship-test-cache-")
    os.environ["EDGESHIP_CANDIDATE_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, True)

pytest_plugins: list[str] = [
    "tests.fixtures.onnx_graphs",
    "tests.fixtures.models",
    "tests.fixtures.sshd",
    "tests.fixtures.netdevice",
    "tests.fixtures.arm64",
    "tests.fixtures.fuzzing",
    "tests.fixtures.corpus",
]
