"""Shared fixtures.  Fixture modules live in tests/fixtures/ and are listed here."""

from __future__ import annotations

import os

# Keep backends from oversubscribing the 2-core CI machine while tests run in one process.
os.environ.setdefault("OMP_NUM_THREADS", "2")

pytest_plugins: list[str] = [
    "tests.fixtures.onnx_graphs",
    "tests.fixtures.models",
    "tests.fixtures.sshd",
    "tests.fixtures.netdevice",
    "tests.fixtures.arm64",
    "tests.fixtures.corpus",
]
