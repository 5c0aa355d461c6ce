"""`python scripts/eval.py ckpt_path=<checkpoint> [data=...]`: test a trained model on a test
set and write metrics.json, the test figures and report.md, as training does."""

import logging
import time

import hydra
import lightning as L
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from imgclf.checkpoints import check_fits_data, load_checkpoint
from imgclf.config import validate
from imgclf.data.sources import IMAGE_FOLDER
from imgclf.errors import UserError, user_errors_reported
from imgclf.train import CONFIG_DIR, build_trainer, write_metrics

log = logging.getLogger(__name__)


def with_checkpoint_dataset(cfg: DictConfig, dataset: str) -> DictConfig:
    """The config again, with `data=<dataset>` added: no data= on the command line means the
    data the model was trained on."""
    if dataset == IMAGE_FOLDER:
        raise UserError(
            "the checkpoint was trained on an image folder: add data=image_folder "
            "data.data_dir=<folder with the same class subfolders>"
        )
    overrides = list(HydraConfig.get().overrides.task)
    return compose(config_name="eval", overrides=[*overrides, f"data={dataset}"])


def evaluate(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    model, spec = load_checkpoint(cfg.ckpt_path)
    if cfg.get("data") is None:
        cfg = with_checkpoint_dataset(cfg, spec.dataset)
    validate(cfg)
    check_fits_data(spec, cfg.data.num_classes, cfg.data.in_channels, cfg.data.image_size)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    trainer = build_trainer(cfg)
    # ckpt_path restores the datamodule's state too: the training set's normalisation.
    trainer.test(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    metrics.update(
        checkpoint=str(cfg.ckpt_path),
        dataset=cfg.data.dataset,
        seconds=round(time.perf_counter() - started, 1),
    )
    write_metrics(trainer, cfg.paths.output_dir, metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    with user_errors_reported():
        evaluate(cfg)


if __name__ == "__main__":
    main()
