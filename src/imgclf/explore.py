"""`python scripts/explore_data.py data=cifar10`: look at a dataset before training on it.

Writes the figures the DataExplorationCallback logs at fit start (a grid of sample training
images with their classes, the class distribution of train, val and test) to the run folder.
"""

import logging
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from imgclf.app import CONFIG_DIR, command_line_app
from imgclf.callbacks.exploration import build_exploration_figures
from imgclf.callbacks.publish import figure_path, save_figure
from imgclf.errors import user_errors_reported
from imgclf.targets import refuse_unknown_targets

log = logging.getLogger(__name__)


def explore(cfg: DictConfig) -> list[Path]:
    refuse_unknown_targets(cfg, "the config")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup()
    paths = []
    figures = build_exploration_figures(datamodule, cfg.samples)
    for name, figure in figures.items():
        paths.append(figure_path(cfg.paths.output_dir, name))
        save_figure(figure, paths[-1])
    log.info("wrote %s", ", ".join(str(path) for path in paths))
    return paths


@command_line_app("explore_data")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="explore_data")
def main(cfg: DictConfig) -> None:
    with user_errors_reported():
        explore(cfg)


if __name__ == "__main__":
    main()
