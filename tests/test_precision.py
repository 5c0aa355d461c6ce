"""precision=auto picks what the hardware runs fast; explicit values pass through; bf16
trains the speedrun network on images with flat backgrounds only with a bounded batch-norm
epsilon."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from imgclf.builders import build_model
from imgclf.precision import cpu_supports_fast_bf16, resolve_precision

from configs import compose_train_config, require_real_data


@pytest.mark.parametrize("explicit", ["32-true", "bf16-mixed", "16-mixed", 64])
def test_explicit_precision_passes_through(explicit: str | int) -> None:
    assert resolve_precision(explicit, "cpu") == explicit


def test_auto_on_cpu_uses_bf16_only_where_the_cpu_runs_it_natively() -> None:
    """Judged by PyTorch's own CPU detection (cpuinfo, through CPUID), not by the
    /proc/cpuinfo flags the code reads: the two must agree on this machine's CPU."""
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert cpu_supports_fast_bf16() == native
    assert resolve_precision("auto", "cpu") == ("bf16-mixed" if native else "32-true")


def whitening_bias_gradients(overrides: list[str], tmp_path: Path) -> tuple:
    """The whitening bias's gradient on the first training batch of the run the overrides
    compose, in float32 and in bf16 autocast."""
    cfg = compose_train_config(["seed=1", *overrides], tmp_path)
    torch.manual_seed(1)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build_model(cfg)
    model.adapt_to(datamodule.description())
    images, labels = next(iter(datamodule.train_dataloader()))
    gradients = []
    for bf16 in (False, True):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        model.criterion(logits.float(), labels).backward()
        gradients.append(model.classifier.net.whiten.bias.grad.clone())
    return tuple(gradients)


@pytest.mark.parametrize("norm_eps", ["recipe", "1e-12"])
def test_bf16_gradients_on_mnist_s_flat_backgrounds_need_a_bounded_norm_eps(
    norm_eps: str, tmp_path: Path
) -> None:
    """MNIST's exactly black background: with airbench's epsilon (1e-12) the whitening bias's
    gradient is a near-perfect cancellation of huge terms that bf16 rounds alike, and it
    comes out thousands of times too large (bf16 MNIST runs collapsed); with the recipe's
    0.1 bf16 stays near float32."""
    data_dir = require_real_data("MNIST/raw")
    overrides = ["data=mnist", f"paths.data_dir={data_dir}", "data.download=false"]
    if norm_eps != "recipe":
        overrides.append(f"model.net.norm_eps={norm_eps}")
    exact, rounded = whitening_bias_gradients(overrides, tmp_path)
    relative_error = ((rounded - exact).norm() / exact.norm()).item()
    if norm_eps == "recipe":
        assert relative_error < 0.5
    else:
        assert relative_error > 100
