"""framework/edge/cpu.py: a recipe that is exact only with VNNI/AMX refuses to load on an x86 CPU without."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeroute.framework.edge.cpu import cpu_flags, require_exact_kernels
from edgeroute.framework.errors import ConfigurationError

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})
VNNI = AVX2_ONLY | {"avx512f", "avx512bw", "avx512_vnni"}


def test_full_8_bit_weights_need_vnni_or_amx_on_x86() -> None:
    with pytest.raises(ConfigurationError, match="a8w7-e8"):
        require_exact_kernels("a8w8-e8", machine="x86_64", flags=AVX2_ONLY)
    with pytest.raises(ConfigurationError):  # AVX-512BW alone still sums pairs into int16
        require_exact_kernels("a8w8-e8", machine="x86_64", flags=AVX2_ONLY | {"avx512f", "avx512bw"})
    for flags in (VNNI, AVX2_ONLY | {"avx_vnni"}, AVX2_ONLY | {"amx_int8"}):
        require_exact_kernels("a8w8-e8", machine="x86_64", flags=flags)


def test_other_recipes_and_architectures_pass() -> None:
    for recipe in ("a8w7-e8", "w8-e4", "none"):
        require_exact_kernels(recipe, machine="x86_64", flags=AVX2_ONLY)
    require_exact_kernels("a8w8-e8", machine="aarch64", flags=frozenset())


def test_cpu_flags_reads_the_flags_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(info) == frozenset({"fpu", "avx2", "avx512_vnni"})
    assert cpu_flags(tmp_path / "missing") is None
