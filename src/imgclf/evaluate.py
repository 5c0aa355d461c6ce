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

from imgclf.checkpoints import InputSpec, check_fits_data, load_checkpoint
from imgclf.config import validate
from imgclf.data.sources import IMAGE_FOLDER, USER_DATASETS
from imgclf.errors import UserError, user_errors_reported
from imgclf.train import CONFIG_DIR, build_trainer, write_metrics

log = logging.getLogger(__name__)


def with_checkpoint_dataset(cfg: DictConfig, spec: InputSpec) -> DictConfig:
    """The config again, with `data=<dataset>` and its classes added: no data= on the command
    line means the data the model was trained on, with the classes it tells apart."""
    if spec.dataset in USER_DATASETS:
        where = "data_dir=<folder>" if spec.dataset == IMAGE_FOLDER else "csv_path=<labels.csv>"
        raise UserError(
            f"the checkpoint was trained on your own images: add data={spec.dataset} "
            f"data.{where} with the classes {spec.class_names}"
        )
    # Quoted, so that digit names ("0", "1") stay strings.
    classes = ",".join(f"'{name}'" for name in spec.class_names)
    overrides = [*HydraConfig.get().overrides.task, f"data={spec.dataset}"]
    return compose(config_name="eval", overrides=[*overrides, f"data.classes=[{classes}]"])


def evaluate(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    model, spec = load_checkpoint(cfg.ckpt_path)
    if cfg.get("data") is None:
        cfg = with_checkpoint_dataset(cfg, spec)
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
