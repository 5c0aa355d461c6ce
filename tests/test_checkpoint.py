"""A checkpoint rebuilds its model alone, from plain data, with weights_only loading."""

from pathlib import Path

import torch

from imgclf.module import ImageClassifier
from imgclf.train import train

from configs import compose_train_config


def test_best_checkpoint_loads_with_no_extra_arguments(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    cfg = compose_train_config(
        [
            "data=mnist",
            f"paths.data_dir={fixture_data_dir}",
            "model=simple_cnn",
            "trainer.max_epochs=1",
            "trainer.accelerator=cpu",
            "data.batch_size=16",
            "logger=csv",
        ],
        tmp_path,
    )
    metrics = train(cfg)
    checkpoint = torch.load(metrics["best_checkpoint"], weights_only=True)
    assert checkpoint["hyper_parameters"]["net"]["_target_"] == "imgclf.models.SimpleCNN"
    model = ImageClassifier.load_from_checkpoint(metrics["best_checkpoint"], weights_only=True)
    model.eval()
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
