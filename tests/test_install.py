"""`pip install .` (not editable): the console scripts find their configs inside the package,
from any folder, and a user's own config folder still joins them (`--config-dir`)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cli import REPO, environment


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """imgclf installed from a built wheel into a folder of its own; its dependencies are this
    environment's, so nothing is downloaded. Built from a copy: a build leaves build/ behind."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    shutil.copytree(REPO / "conf", source / "conf")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return target


def run_installed(
    site: Path, *arguments: str, cwd: Path, data_dir: Path
) -> subprocess.CompletedProcess:
    # The installed copy comes first on the path, ahead of the editable checkout.
    env = environment(
        data_dir, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.run(
        [str(site / "bin" / "imgclf-train"), *arguments],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_package_carries_its_configs_and_no_checkout_is_needed(installed: Path) -> None:
    conf = installed / "imgclf" / "conf"
    shipped = {path.relative_to(conf) for path in conf.rglob("*.yaml")}
    in_checkout = {path.relative_to(REPO / "conf") for path in (REPO / "conf").rglob("*.yaml")}
    assert shipped == in_checkout


def test_installed_train_runs_from_any_folder_with_a_config_folder_of_the_users(
    installed: Path, fixture_data_dir: Path, tmp_path: Path
) -> None:
    own = tmp_path / "my_conf" / "experiment"
    own.mkdir(parents=True)
    (own / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: simple_cnn\n"
        "optimizer:\n  lr: 0.0005\n"
    )
    result = run_installed(
        installed, "--config-dir", str(tmp_path / "my_conf"), "experiment=mine",
        "debug=fast_dev_run", "callbacks=minimal", "hydra.run.dir=run",
        cwd=tmp_path, data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    config = OmegaConf.load(tmp_path / "run" / ".hydra" / "config.yaml")
    assert config.optimizer.lr == 0.0005
    assert config.model.net._target_ == "imgclf.models.SimpleCNN"
    # It ran the installed copy, not this checkout.
    hydra = OmegaConf.load(tmp_path / "run" / ".hydra" / "hydra.yaml")
    sources = [source.path for source in hydra.hydra.runtime.config_sources]
    assert str(installed / "imgclf" / "conf") in sources
    assert not any(str(REPO / "src") in path for path in sources)
