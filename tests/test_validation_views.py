"""The test-time views: validation may skip them (`model.validate_with_test_time_views=false`:
one forward pass per image) while the test averages them; the shifted views go only to the
images the unshifted view leaves uncertain (`model.translate_test_time_margin`)."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from imgclf.checkpoints import read_checkpoint
from imgclf.classifier import EvaluationViews, augmented_view_logits
from imgclf.data import sources
from imgclf.models import AirbenchNet
from imgclf.module import ImageClassifier

from configs import require_real_data

# A VGG network the previous version trained on MNIST (95.5 % test accuracy): sure of most
# digits, unsure of some.
TRAINED = Path(__file__).parent / "fixtures" / "previous_version" / "vgg_cnn_mnist.ckpt"


def trained_model(**views: object) -> ImageClassifier:
    """The trained checkpoint's model, with other test-time view settings."""
    checkpoint = read_checkpoint(TRAINED, "ckpt_path")
    model = ImageClassifier(**{**checkpoint["hyper_parameters"], **views})
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def real_digits_and_blends() -> torch.Tensor:
    """256 MNIST test digits, and 64 blends of two digits, which no model can be sure of."""
    images = sources.load("mnist", require_real_data("MNIST/raw")).test.images[:320]
    blends = ((images[:64].int() + images[64:128].int()) // 2).to(torch.uint8)
    return torch.cat([images[128:], blends])


@pytest.mark.parametrize("validate_with_views", [True, False])
def test_validation_and_test_shift_exactly_the_images_the_model_is_unsure_of(
    validate_with_views: bool,
) -> None:
    model = trained_model(
        translate_test_time=True,
        translate_test_time_margin=0.5,
        validate_with_test_time_views=validate_with_views,
    )
    pixels = real_digits_and_blends()
    mean, std = model.classifier.normalisation.mean, model.classifier.normalisation.std
    net = model.classifier.net
    with torch.no_grad():
        images = (pixels.float() / 255 - mean[:, None, None]) / std[:, None, None]
        unshifted = net(images)
        padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
        up_left, down_right = net(padded[..., :-2, :-2]), net(padded[..., 2:, 2:])
        top_two = unshifted.softmax(dim=1).topk(2, dim=1).values
        unsure = top_two[:, 0] - top_two[:, 1] < 0.5
        shifted = 0.5 * unshifted + 0.25 * (up_left + down_right)
        expected = torch.where(unsure[:, None], shifted, unshifted).softmax(dim=1)
        batch = (pixels, torch.zeros(len(pixels), dtype=torch.long))
        validated = model.shared_step(batch, "val")[1]["probabilities"]
        tested = model.shared_step(batch, "test")[1]["probabilities"]
    # The margin decides: some images are shifted and some are not, and shifting changes them.
    assert 0 < int(unsure.sum()) < len(pixels) // 2
    assert not torch.allclose(shifted[unsure], unshifted[unsure], atol=1e-3)
    torch.testing.assert_close(tested, expected, atol=1e-5, rtol=1e-4)
    single = unshifted.softmax(dim=1)
    torch.testing.assert_close(
        validated, expected if validate_with_views else single, atol=1e-5, rtol=1e-4
    )


def test_export_computes_every_view_and_selects_the_same_logits() -> None:
    torch.manual_seed(0)
    net = AirbenchNet(3, 10, 32, widths=(8, 16, 16)).eval()
    images = torch.randn(64, 3, 32, 32)
    with torch.no_grad():
        unshifted = augmented_view_logits(net, images, EvaluationViews(flip=True))
        top_two = unshifted.softmax(1).topk(2, dim=1).values
        margin = (top_two[:, 0] - top_two[:, 1]).median().item()
        views = EvaluationViews(flip=True, translate=True, translate_margin=margin)
        selective = augmented_view_logits(net, images, views)
        exported = augmented_view_logits(net, images, views, skip_confident=False)
        no_shifts = augmented_view_logits(net, images, EvaluationViews(True, True, 0.0))
    torch.testing.assert_close(exported, selective)
    torch.testing.assert_close(no_shifts, unshifted)
