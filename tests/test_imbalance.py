"""Imbalanced classes: the run counts them and warns, `model.class_weights=auto` weighs the
loss, `data.sampler=balanced` draws every class equally often, and the balanced validation
metrics can steer checkpoints and sweeps."""

import json
import logging
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from imgclf.builders import build_model
from imgclf.data import ImageFilesDataModule
from imgclf.data.balance import inverse_frequency_weights
from imgclf.data.transforms import ImageAugment

from cli import run_train
from configs import compose_train_config
from dataset_files import write_image_folder

# 30 cats, 10 dogs, 5 foxes: 6x between the largest and the smallest class.
COUNTS = {"cat": 30, "dog": 10, "fox": 5}


@pytest.fixture(scope="module")
def skewed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("skewed")
    for name, count in COUNTS.items():
        write_image_folder(root, classes=(name,), per_class=count)
    return root


def skewed_module(root: Path, cache: str, **options) -> ImageFilesDataModule:  # noqa: ANN003
    return ImageFilesDataModule(
        dataset="image_folder", data_dir=root, num_classes=3, in_channels=3, image_size=16,
        val_ratio=0, test_ratio=0.2, num_workers=0, augment=ImageAugment(), cache=cache,
        cache_dir=root.parent / "cache", **options,
    )  # fmt: skip


def test_inverse_frequency_weights_make_every_class_weigh_the_same() -> None:
    counts = torch.tensor([24, 8, 4])
    weights = inverse_frequency_weights(counts)
    # total / (classes * count) = 36 / (3 * count)
    assert torch.allclose(weights, torch.tensor([0.5, 1.5, 3.0]))
    assert torch.allclose(weights * counts, torch.full((3,), 12.0))


def test_class_weights_auto_puts_the_training_counts_in_the_loss(
    skewed_folder: Path, tmp_path: Path
) -> None:
    cfg = compose_train_config(
        [
            "data=image_folder",
            f"data.data_dir={skewed_folder}",
            "data.val_ratio=0",
            "data.test_ratio=0.2",
            "model=simple_cnn",
            "model.class_weights=auto",
        ],
        tmp_path,
    )
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    model = build_model(cfg)
    model.adapt_to(datamodule.description())
    # 80 % of each class trains: 24 cats, 8 dogs, 4 foxes.
    assert datamodule.train_class_counts().tolist() == [24, 8, 4]
    assert torch.allclose(model.criterion.weight, torch.tensor([0.5, 1.5, 3.0]))
    # A cat and a fox, both called cats: the fox's error weighs 6x the cat's in the mean.
    both = torch.tensor([[4.0, 0.0, 0.0], [4.0, 0.0, 0.0]])
    cat_and_fox = torch.tensor([0, 2])
    per_image = torch.nn.functional.cross_entropy(both, cat_and_fox, reduction="none")
    expected = (0.5 * per_image[0] + 3.0 * per_image[1]) / 3.5
    assert torch.isclose(model.criterion(both, cat_and_fox), expected)


def test_class_weights_of_the_wrong_length_are_refused(tmp_path: Path) -> None:
    cfg = compose_train_config(["model=simple_cnn", "model.class_weights=[1,2]"], tmp_path)
    with pytest.raises(Exception, match="a list of 10 numbers"):
        build_model(cfg)


@pytest.mark.parametrize("cache", ["ram", "none"])
def test_balanced_sampler_draws_every_class_equally_often(skewed_folder: Path, cache: str) -> None:
    datamodule = skewed_module(skewed_folder, cache, sampler="balanced", batch_size=4)
    datamodule.setup()
    drawn = torch.zeros(3)
    loader = datamodule.loader("train")
    for epoch in range(40):
        if cache == "ram":  # the in-memory loader's order is keyed by the trainer's epoch
            loader.current_epoch = lambda epoch=epoch: epoch
        for _, labels in loader:
            drawn += torch.bincount(labels, minlength=3)
    frequencies = drawn / drawn.sum()
    # Uniform draws would give 24/36, 8/36 and 4/36 (0.67, 0.22, 0.11).
    assert torch.allclose(frequencies, torch.full((3,), 1 / 3), atol=0.05), frequencies


def test_uniform_sampler_keeps_the_skew(skewed_folder: Path) -> None:
    datamodule = skewed_module(skewed_folder, "ram", batch_size=4)
    datamodule.setup()
    drawn = sum(torch.bincount(labels, minlength=3) for _, labels in datamodule.loader("train"))
    assert drawn.tolist() == [24, 8, 4]


def test_imbalance_is_logged_with_a_warning_naming_the_remedies(
    skewed_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        skewed_module(skewed_folder, "ram").setup()
    assert "training images per class: cat 24, dog 8, fox 4" in caplog.text
    warning = next(r.message for r in caplog.records if r.levelno == logging.WARNING)
    assert "cat has 24 training images, fox only 4 (6.0x)" in warning
    assert "model.class_weights=auto" in warning and "data.sampler=balanced" in warning


def train_balanced(folder: Path, run_dir: Path, *overrides: str):  # noqa: ANN201
    """One short command-line run on `folder` with both remedies for imbalance."""
    return run_train(
        "data=image_folder", f"data.data_dir={folder}", "data.image_size=16",
        "data.batch_size=8", "data.sampler=balanced", "model=simple_cnn",
        "model.class_weights=auto", "trainer.accelerator=cpu",
        "callbacks=minimal", f"hydra.run.dir={run_dir}", *overrides,
    )  # fmt: skip


def test_balanced_metrics_steer_the_checkpoint_and_the_sweep_objective(
    skewed_folder: Path, tmp_path: Path
) -> None:
    result = train_balanced(
        skewed_folder,
        tmp_path,
        "trainer.max_epochs=2",
        "callbacks.model_checkpoint.monitor=val/f1_macro",
        "optimized_metric=val/acc_balanced_best",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for name in ("val/f1_macro", "val/acc_balanced", "val/f1_macro_best", "val/acc_balanced_best"):
        assert name in metrics
    checkpoint = torch.load(metrics["best_checkpoint"], map_location="cpu", weights_only=True)
    callback_state = next(
        state for key, state in checkpoint["callbacks"].items() if "ModelCheckpoint" in key
    )
    assert "val/f1_macro" in next(k for k in checkpoint["callbacks"] if "ModelCheckpoint" in k)
    assert callback_state["best_model_score"] == pytest.approx(metrics["val/f1_macro_best"])


@pytest.mark.parametrize("cache", ["ram", "disk", "none"])
def test_balanced_sampler_and_class_weights_train_under_ddp(
    skewed_folder: Path, tmp_path: Path, cache: str
) -> None:
    result = train_balanced(
        skewed_folder,
        tmp_path,
        "trainer=ddp_cpu",
        "trainer.max_epochs=1",
        f"data.cache={cache}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.num_workers=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "val/acc_balanced" in metrics and "test/acc" in metrics
