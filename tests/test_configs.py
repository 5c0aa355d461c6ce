"""Every data x model pair composes, and the network's shape follows the data config."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from imgclf.builders import build_model
from imgclf.schedulers import one_cycle
from imgclf.targets import ALLOWED_TARGETS

from configs import CONFIG_DIR, DATASETS, MODELS, compose_train_config, data_overrides


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_every_data_model_pair_composes_into_a_working_network(
    dataset: str, model: str, fixture_data_dir: Path, image_folder: Path, tmp_path: Path
) -> None:
    cfg = compose_train_config(
        [*data_overrides(dataset, fixture_data_dir, image_folder), f"model={model}"], tmp_path
    )
    assert cfg.model.net.in_channels == cfg.data.in_channels
    classifier = build_model(cfg)
    images = torch.zeros(2, cfg.data.in_channels, cfg.data.image_size, cfg.data.image_size)
    assert classifier(images).shape == (2, cfg.data.num_classes)


def test_image_folder_class_count_comes_from_its_subfolders(
    image_folder: Path, tmp_path: Path
) -> None:
    cfg = compose_train_config(["data=image_folder", f"data.data_dir={image_folder}"], tmp_path)
    assert cfg.data.num_classes == 3
    assert cfg.model.net.num_classes == 3


@pytest.mark.parametrize(
    "group", ["optimizer=adamw", "optimizer=sgd", "scheduler=cosine", "scheduler=none"]
)
def test_optimizer_and_scheduler_options_build(group: str, tmp_path: Path) -> None:
    cfg = compose_train_config([group, "model=simple_cnn"], tmp_path)
    classifier = build_model(cfg)
    optimizer = classifier.optimizer_factory(params=classifier.parameters())
    assert optimizer.param_groups[0]["lr"] == cfg.optimizer.lr
    if cfg.scheduler is None:
        assert classifier.scheduler_factory is None
    else:
        scheduler = classifier.scheduler_factory(optimizer=optimizer, total_steps=100)
        for _ in range(100):
            optimizer.step()
            scheduler.step()


def test_experiment_preset_overrides_groups(tmp_path: Path) -> None:
    cfg = compose_train_config(["experiment=mnist_quick"], tmp_path)
    assert cfg.data.dataset == "mnist"
    assert cfg.model.net._target_ == "imgclf.models.SimpleCNN"
    assert cfg.trainer.max_epochs == 3


def test_fashion_mnist_speedrun_is_the_cifar10_speedrun_sized_for_grey_28px(
    tmp_path: Path,
) -> None:
    cfg = compose_train_config(["experiment=fashion_mnist_speedrun"], tmp_path)
    speedrun = compose_train_config(["experiment=cifar10_speedrun"], tmp_path)
    assert cfg.data.dataset == "fashion_mnist" and cfg.data.val_ratio == 0
    assert list(cfg.model.net.widths) == [48, 96, 192] and cfg.trainer.max_epochs == 8
    for key in ("optimizer", "scheduler", "data.augment", "trainer.accumulate_grad_batches"):
        assert OmegaConf.select(cfg, key) == OmegaConf.select(speedrun, key), key
    classifier = build_model(cfg)
    assert classifier(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape == (2, 10)


def test_a_model_s_recipe_for_a_dataset_applies_only_to_that_pair(tmp_path: Path) -> None:
    recipe = compose_train_config(["data=mnist"], tmp_path)  # recipe/deep_cnn_mnist
    assert list(recipe.model.net.widths) == [32, 64, 128] and recipe.trainer.max_epochs == 4
    assert not recipe.data.augment.horizontal_flip  # data/mnist.yaml's, kept by the recipe
    assert recipe.model.net.norm_eps == 0.1  # bf16 needs it on MNIST (test_precision.py)
    net = instantiate(recipe.model.net)
    assert {m.eps for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}
    vgg = compose_train_config(["data=mnist", "model=vgg_cnn"], tmp_path)  # recipe/vgg_cnn_mnist
    assert list(vgg.model.net.widths) == [32, 64, 128] and vgg.trainer.max_epochs == 5
    other_model = compose_train_config(["data=mnist", "model=simple_cnn"], tmp_path)
    assert list(other_model.model.net.widths) == [32, 64]  # simple_cnn's own
    assert not other_model.model.translate_test_time and other_model.trainer.max_epochs == 6
    other_data = compose_train_config(["data=cifar10"], tmp_path)
    assert list(other_data.model.net.widths) == [64, 128, 256]
    assert other_data.trainer.max_epochs == 9 and other_data.model.net.norm_eps == 1e-12
    overridden = compose_train_config(["data=mnist", "trainer.max_epochs=2"], tmp_path)
    assert overridden.trainer.max_epochs == 2  # the command line still wins


def test_deep_cnn_trains_with_muon_unless_told_otherwise_and_photos_train_vgg_cnn(
    tmp_path: Path,
) -> None:
    default = compose_train_config([], tmp_path)
    assert default.model.net._target_ == "imgclf.models.AirbenchNet"
    assert default.optimizer._target_ == "imgclf.optim.Muon"
    assert default.scheduler._target_ == "imgclf.schedulers.linear_decay"
    assert default.data.batch_size * default.trainer.accumulate_grad_batches == 2000
    assert default.data.val_ratio > 0  # the default validates, unlike the speedrun
    adam = compose_train_config(["optimizer=adam", "scheduler=cosine"], tmp_path)
    assert adam.optimizer._target_ == "torch.optim.Adam"
    assert adam.scheduler._target_ == "imgclf.schedulers.cosine"
    assert "group_epochs" not in adam.scheduler  # linear_decay's, not the recipe's
    assert compose_train_config(["scheduler=none"], tmp_path).scheduler is None
    assert adam.model.net._target_ == "imgclf.models.AirbenchNet"
    others = compose_train_config(["model=simple_cnn"], tmp_path)
    assert others.optimizer._target_ == "torch.optim.Adam"  # train.yaml's default

    folder = ["data=image_folder", f"data.data_dir={tmp_path}"]
    photos = compose_train_config(folder, tmp_path)
    assert photos.model.net._target_ == "imgclf.models.VggCNN"
    assert photos.optimizer._target_ == "torch.optim.Adam"
    chosen = compose_train_config([*folder, "model=deep_cnn"], tmp_path)
    assert chosen.model.net._target_ == "imgclf.models.AirbenchNet"
    assert chosen.optimizer._target_ == "imgclf.optim.Muon"
    finetune = compose_train_config(["experiment=finetune", f"data.data_dir={tmp_path}"], tmp_path)
    assert finetune.model._target_ == photos.model._target_ and finetune.model.name == "resnet18"


@pytest.mark.parametrize("total_steps", [1, 2, 3, 4, 5, 7])
def test_one_cycle_schedule_survives_very_short_runs(total_steps: int) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = one_cycle(optimizer, total_steps=total_steps)
    rates = []
    for _ in range(total_steps):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert all(0 <= rate <= 0.1 + 1e-12 for rate in rates)
    assert max(rates) == pytest.approx(0.1)  # it peaks at the optimizer's rate
    if total_steps >= 4:  # a real cycle: up, then down
        assert rates[-1] < max(rates)


def test_every_target_the_configs_name_passes_the_gate() -> None:
    """A config added without its class in ALLOWED_TARGETS would be refused at run time."""
    targets = {
        line.split(":", 1)[1].strip()
        for path in CONFIG_DIR.rglob("*.yaml")
        for line in path.read_text().splitlines()
        if line.strip().startswith("_target_:")
    }
    assert len(targets) > 30
    assert targets <= ALLOWED_TARGETS, targets - ALLOWED_TARGETS
