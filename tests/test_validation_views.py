"""The test-time views: validation may skip them (`model.validate_with_test_time_views=false`:
one forward pass per image) while the test averages them; the shifted views may go only to
the images the others leave uncertain (`model.translate_test_time_margin`)."""

from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from imgclf.builders import build_model
from imgclf.models import AirbenchNet
from imgclf.module import augmented_view_logits

from configs import compose_train_config


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


def test_shifted_views_go_only_to_the_uncertain_images() -> None:
    torch.manual_seed(0)
    net = AirbenchNet(3, 10, 32, widths=(8, 16, 16)).eval()
    images = torch.randn(64, 3, 32, 32)
    with torch.no_grad():
        unshifted = augmented_view_logits(net, images, flip=True, translate=False)
        every_view = augmented_view_logits(net, images, flip=True, translate=True)
        top_two = unshifted.softmax(1).topk(2, dim=1).values
        margins = top_two[:, 0] - top_two[:, 1]
        margin = margins.median().item()
        selective = augmented_view_logits(net, images, True, True, translate_margin=margin)
        exported = augmented_view_logits(net, images, True, True, margin, skip_confident=False)
        no_shifts = augmented_view_logits(net, images, True, True, translate_margin=0.0)
    uncertain = margins < margin
    assert 0 < uncertain.sum() < len(images)
    assert not torch.allclose(unshifted, every_view, atol=1e-5)
    torch.testing.assert_close(selective[uncertain], every_view[uncertain])
    torch.testing.assert_close(selective[~uncertain], unshifted[~uncertain])
    torch.testing.assert_close(exported, selective)
    torch.testing.assert_close(no_shifts, unshifted)
