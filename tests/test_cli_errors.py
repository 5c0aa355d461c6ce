"""Configuration mistakes on the command line get Hydra's message, not a traceback."""

from pathlib import Path

from cli import run_train


def test_unknown_model_lists_the_available_options(tmp_path: Path) -> None:
    result = run_train("model=vgg99", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert "Could not find 'model/vgg99'" in result.stderr
    for option in ("deep_cnn", "resnet18", "simple_cnn"):
        assert option in result.stderr
    assert "Traceback" not in result.stderr


def test_image_folder_without_a_folder_says_which_key_to_set(tmp_path: Path) -> None:
    result = run_train("data=image_folder", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert "data.data_dir" in result.stderr
    assert "Traceback" not in result.stderr
