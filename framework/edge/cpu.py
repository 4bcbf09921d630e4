"""Which CPUs compute a quantization recipe exactly (x86 flags from ``/proc/cpuinfo``).

ONNX Runtime's u8 x s8 integer GEMM (``MatMulIntegerToFloat``, the row-wise recipes) sums products in
pairs into int16 on x86 CPUs without VNNI (``vpmaddubsw``, AVX2 and AVX-512BW), which saturates above
32,767. ``a8w7-e8`` keeps its weights in -63..63 so that never happens (2 x 255 x 63 = 32,130).
``a8w8-e8`` uses all of -127..127: exact where the kernel accumulates in int32 (AVX-512 VNNI, AVX-VNNI,
AMX; the ARM kernels were not checked and are let through), wrong by up to cosine 0.97 on some rows
on x86 without them. A directory is a copyable artefact, so the check runs where it is loaded, not
where it was exported.
"""

from __future__ import annotations

import platform
from pathlib import Path

from ..errors import ConfigurationError

INT32_DOT_RECIPES = frozenset({"a8w8-e8"})
"""Recipes whose integer products are exact only with an int32-accumulating u8 x s8 instruction."""
_INT32_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
_X86 = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The first CPU's ``flags`` line, or None where it cannot be read (not Linux)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    line = next((x for x in text.splitlines() if x.startswith("flags")), None)
    return None if line is None else frozenset(line.split(":", 1)[-1].split())


def require_exact_kernels(
    recipe: str, *, machine: str | None = None, flags: frozenset[str] | None = None
) -> None:
    """Raise :class:`ConfigurationError` when ``recipe`` needs int32-accumulating u8 x s8 kernels and
    this x86 CPU reports none. Other recipes, other architectures, and CPUs whose flags cannot be read
    pass (the last: nothing to go on)."""
    if recipe not in INT32_DOT_RECIPES:
        return
    if (machine or platform.machine()).lower() not in _X86:
        return
    found = cpu_flags() if flags is None else flags
    if found is None or found & _INT32_DOT_FLAGS:
        return
    raise ConfigurationError(
        f"this CPU has no VNNI or AMX (none of {', '.join(sorted(_INT32_DOT_FLAGS))}), so the {recipe!r} "
        "model's 8-bit weights would saturate in ONNX Runtime's integer GEMM; export the portable recipe "
        "instead: `edgeroute model export --quantize a8w7-e8 --out DIR`."
    )


def check_recipe(path: object, recipe: str, wanted: str | None) -> None:
    """What :meth:`EdgeEmbedder.load` checks of a directory's recipe: ``wanted`` (when given) is the
    manifest's ``recipe``, and this CPU computes it exactly (:func:`require_exact_kernels`)."""
    if wanted is not None and recipe != wanted:
        raise ConfigurationError(
            f"{path} holds a {recipe!r} model, not {wanted!r}; "
            f"export one with `edgeroute model export --quantize {wanted} --out DIR` and pass DIR."
        )
    require_exact_kernels(recipe)


__all__ = ["INT32_DOT_RECIPES", "check_recipe", "cpu_flags", "require_exact_kernels"]
