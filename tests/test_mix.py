"""MixUp and CutMix: soft targets that say how much of each image a mixed image holds."""

from pathlib import Path

import lightning as L
import torch

from imgclf.data.mix import BatchMix
from imgclf.data.pixels import unit_range

from configs import data_overrides, fit_watched, require_real_data


def real_batch(count: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` CIFAR-10 test images (uint8) and their labels."""
    data_dir = require_real_data("cifar-10-batches-bin/test_batch.bin")
    raw = (data_dir / "cifar-10-batches-bin" / "test_batch.bin").read_bytes()
    records = torch.frombuffer(bytearray(raw[: count * 3073]), dtype=torch.uint8).view(count, 3073)
    return records[:, 1:].reshape(count, 3, 32, 32).clone(), records[:, 0].long()


def shares(soft: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's share of its own label and of its partner's (the previous image: v2's
    mixes pair each image with the batch rolled by one)."""
    partner = labels.roll(1)
    own = soft.gather(1, labels[:, None]).squeeze(1)
    other = soft.gather(1, partner[:, None]).squeeze(1)
    # Where both images have the same label, the whole target is that label.
    same = labels == partner
    return torch.where(same, own * 0 + 1, own), torch.where(same, own * 0, other)


def test_mixup_blends_images_in_the_shares_its_labels_say() -> None:
    torch.manual_seed(0)
    pixels, labels = real_batch()
    mixed, soft = BatchMix(10, mixup=0.2)(pixels, labels)
    assert soft.shape == (64, 10)
    assert torch.allclose(soft.sum(1), torch.ones(64))
    assert ((soft > 0).sum(1) <= 2).all()
    images = unit_range(pixels)
    # One share for the batch: recover it from an image whose partner has another label.
    differs = labels != labels.roll(1)
    own, other = shares(soft, labels)
    share = own[differs][0]
    assert 0 < share < 1 and torch.allclose(own[differs], share) and torch.allclose(other, 1 - own)
    assert torch.allclose(mixed, share * images + (1 - share) * images.roll(1, 0), atol=1e-6)


def test_cutmix_pastes_as_many_pixels_as_the_partner_share() -> None:
    torch.manual_seed(1)
    pixels, labels = real_batch()
    mixed, soft = BatchMix(10, cutmix=1.0)(pixels, labels)
    assert torch.allclose(soft.sum(1), torch.ones(64))
    images, partners = unit_range(pixels), unit_range(pixels).roll(1, 0)
    # Pixels from the partner: where the mixed image equals it and not the image itself.
    pasted = ((mixed == partners) & (mixed != images)).all(1).float().mean((1, 2))
    differs = labels != labels.roll(1)
    _, other = shares(soft, labels)
    assert torch.allclose(pasted[differs], other[differs], atol=0.03)
    assert (other[differs] > 0).all()


def test_training_batches_carry_soft_targets_and_evaluation_batches_do_not(
    tmp_path: Path, fixture_data_dir: Path
) -> None:
    class Watcher(L.Callback):
        targets: dict[str, list[torch.Tensor]] = {"train": [], "val": []}  # noqa: RUF012

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            self.targets["train"].append(batch[1])

        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            self.targets["val"].append(batch[1])

    watcher = Watcher()
    overrides = [
        "data=cifar10", f"paths.data_dir={fixture_data_dir}", "data.download=false",
        "data.batch_size=16", "data.augment.mixup=0.2", "data.augment.cutmix=1.0",
    ]  # fmt: skip
    trainer = fit_watched(overrides, tmp_path, watcher, max_epochs=1, limit_train_batches=4)
    train, val = watcher.targets["train"], watcher.targets["val"]
    assert len(train) == 4 and all(t.shape == (16, 10) for t in train)
    assert all(torch.allclose(t.sum(1), torch.ones(16)) for t in train)
    assert val and all(t.ndim == 1 for t in val)
    # Training accuracy is counted on the larger share's class (torchmetrics refuses soft
    # targets: without that step the fit fails).
    assert "train/acc" in trainer.callback_metrics


def test_image_files_streamed_from_disk_are_mixed_too(tmp_path: Path, image_folder: Path) -> None:
    class Watcher(L.Callback):
        targets: list[torch.Tensor] = []  # noqa: RUF012

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            self.targets.append(batch[1])

    watcher = Watcher()
    overrides = [
        *data_overrides("image_csv", tmp_path, image_folder), "data.batch_size=8",
        "data.augment.cutmix=1.0", "model=simple_cnn",
    ]  # fmt: skip
    fit_watched(overrides, tmp_path, watcher, max_epochs=1, limit_train_batches=2)
    assert len(watcher.targets) == 2
    assert all(
        t.ndim == 2 and torch.allclose(t.sum(1), torch.ones(len(t))) for t in watcher.targets
    )
