"""Validation may skip the test-time views (`model.validate_with_test_time_views=false`): one
forward pass per image, while the test still averages the views."""

from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from imgclf.module import augmented_view_logits
from imgclf.train import build_model

from conftest import compose_train_config


@pytest.mark.parametrize("validate_with_views", [True, False])
def test_validation_uses_the_views_only_when_asked(
    validate_with_views: bool, tmp_path: Path
) -> None:
    cfg: DictConfig = compose_train_config(
        ["model.translate_test_time=true",
         f"model.validate_with_test_time_views={validate_with_views}"],
        tmp_path,
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    pixels = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    batch = (pixels, torch.arange(4))
    with torch.no_grad():
        images = model.normalise(pixels)
        single = model.net(images).float().softmax(1)
        averaged = augmented_view_logits(model.net, images, flip=True, translate=True).softmax(1)
        validated = model.shared_step(batch, "val")[1]["probabilities"]
        tested = model.shared_step(batch, "test")[1]["probabilities"]
    assert not torch.allclose(single, averaged)
    assert torch.allclose(validated, averaged if validate_with_views else single, atol=1e-6)
    assert torch.allclose(tested, averaged, atol=1e-6)
