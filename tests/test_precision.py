"""precision=auto picks what the hardware runs fast; explicit values pass through."""

import pytest
import torch

from imgclf.precision import cpu_supports_fast_bf16, resolve_precision


@pytest.mark.parametrize("explicit", ["32-true", "bf16-mixed", "16-mixed", 64])
def test_explicit_precision_passes_through(explicit: str | int) -> None:
    assert resolve_precision(explicit, "cpu") == explicit


def test_auto_on_cpu_uses_bf16_only_where_the_cpu_runs_it_natively() -> None:
    """Judged by PyTorch's own CPU detection (cpuinfo, through CPUID), not by the
    /proc/cpuinfo flags the code reads: the two must agree on this machine's CPU."""
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert cpu_supports_fast_bf16() == native
    assert resolve_precision("auto", "cpu") == ("bf16-mixed" if native else "32-true")
