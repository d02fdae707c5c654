"""ISA features as profiles name them, and the /proc/cpuinfo flags that announce them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

# ISA feature (as profiles name it) -> the /proc/cpuinfo flags that announce it, any of them.
ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "neon": ("asimd", "neon"),
    "fp16": ("asimdhp",),
    "dotprod": ("asimddp",),
    "i8mm": ("i8mm",),
    "bf16": ("bf16",),
    "sve": ("sve",),
    "sve2": ("sve2",),
    "sme": ("sme",),
    "avx2": ("avx2",),
    "fma": ("fma",),
    "f16c": ("f16c",),
    "avx_vnni": ("avx_vnni",),
    "avx512f": ("avx512f",),
    "avx512bw": ("avx512bw",),
    "avx512vl": ("avx512vl",),
    "avx512_vnni": ("avx512_vnni",),
    "avx512_bf16": ("avx512_bf16",),
    "avx512_fp16": ("avx512_fp16",),
    "amx_tile": ("amx_tile",),
    "amx_int8": ("amx_int8",),
    "amx_bf16": ("amx_bf16",),
    "amx_fp16": ("amx_fp16",),
}


def features_of(flags: Optional[Iterable[str]]) -> list[str]:
    """The ISA features a device's cpuinfo flags announce, in ISA_FLAGS order.

    >>> features_of(["fpu", "avx2", "avx512f", "avx512_bf16"])
    ['avx2', 'avx512f', 'avx512_bf16']
    """
    have = set(flags or ())
    return [feature for feature, names in ISA_FLAGS.items() if have & set(names)]
