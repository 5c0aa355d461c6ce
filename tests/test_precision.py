"""precision=auto picks what the hardware runs fast; explicit values pass through."""

import pytest

from imgclf.precision import cpu_supports_fast_bf16, resolve_precision


@pytest.mark.parametrize("explicit", ["32-true", "bf16-mixed", "16-mixed", 64])
def test_explicit_precision_passes_through(explicit: str | int) -> None:
    assert resolve_precision(explicit, "cpu") == explicit


def test_auto_on_cpu_uses_bf16_only_where_the_cpu_runs_it_natively() -> None:
    expected = "bf16-mixed" if cpu_supports_fast_bf16() else "32-true"
    assert resolve_precision("auto", "cpu") == expected
