"""One batch of fit and test for every data x model pair, on fixtures in the real formats."""

import json
from pathlib import Path

import pytest

from imgclf.train import train

from configs import DATASETS, MODELS, compose_train_config, data_overrides


def fast_dev_run(overrides: list[str], output_dir: Path) -> dict:
    cfg = compose_train_config(
        ["debug=fast_dev_run", "data.batch_size=8", "trainer.accelerator=cpu", *overrides],
        output_dir,
    )
    return train(cfg)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_fast_dev_run_fits_and_tests_every_pair(
    dataset: str, model: str, fixture_data_dir: Path, image_folder: Path, tmp_path: Path
) -> None:
    metrics = fast_dev_run(
        [*data_overrides(dataset, fixture_data_dir, image_folder), f"model={model}"], tmp_path
    )
    for name in ("train/loss", "val/acc", "val/acc_best", "test/acc", "test/loss"):
        assert name in metrics
    assert (tmp_path / "metrics.json").is_file()


@pytest.mark.parametrize("model", MODELS)
def test_class_subset_weights_and_balanced_sampler_work_with_every_model(
    model: str, fixture_data_dir: Path, image_folder: Path, tmp_path: Path
) -> None:
    overrides = [
        *data_overrides("image_csv", fixture_data_dir, image_folder),
        "data.classes=[fox,cat]",
        "data.sampler=balanced",
        "model.class_weights=auto",
        f"model={model}",
    ]
    metrics = fast_dev_run(overrides, tmp_path)
    assert "test/acc" in metrics and "val/f1_macro" in metrics
    confusion = json.loads((tmp_path / "figures" / "confusion_matrix.json").read_text())
    assert confusion["class_names"] == ["fox", "cat"]


def test_fast_dev_run_reads_cifar_python_version(cifar_python_dir: Path, tmp_path: Path) -> None:
    metrics = fast_dev_run(
        ["data=cifar10", f"paths.data_dir={cifar_python_dir}", "data.download=false"], tmp_path
    )
    assert "test/acc" in metrics
    # The class names come from the python version's batches.meta pickle.
    confusion = json.loads((tmp_path / "figures" / "confusion_matrix.json").read_text())
    assert confusion["class_names"][:3] == ["airplane", "automobile", "bird"]


def test_fast_dev_run_with_csv_logger_and_early_stopping(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    metrics = fast_dev_run(
        [
            "data=mnist",
            f"paths.data_dir={fixture_data_dir}",
            "logger=csv",
            "callbacks=early_stopping",
        ],
        tmp_path,
    )
    assert "test/acc" in metrics
