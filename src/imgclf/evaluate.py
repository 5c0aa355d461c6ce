"""`python scripts/eval.py ckpt_path=<checkpoint> [data=...]`: test a trained model on a test
set and write metrics.json, the test figures and report.md, as training does."""

import logging
import time

import hydra
import lightning as L
from hydra import compose
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from imgclf.app import CONFIG_DIR, command_line_app
from imgclf.builders import build_trainer, check_fits_data, read_as_trained
from imgclf.checks import validate
from imgclf.data.sources import IMAGE_FOLDER, USER_DATASETS
from imgclf.errors import UserError, user_errors_reported
from imgclf.module import ImageClassifier, check_task_fits, load_checkpoint
from imgclf.resolvers import data_task
from imgclf.run_folder import write_metrics

log = logging.getLogger(__name__)


def with_checkpoint_dataset(cfg: DictConfig, model: ImageClassifier) -> DictConfig:
    """The config with the data the model was trained on (no data= on the command line), and
    the classes it tells apart."""
    dataset = model.hparams.dataset
    if dataset in USER_DATASETS:
        where = "data_dir=<folder>" if dataset == IMAGE_FOLDER else "csv_path=<labels.csv>"
        raise UserError(
            f"the checkpoint was trained on your own images: add data={dataset} "
            f"data.{where} with the classes {model.class_names}"
        )
    # The data config alone: composing eval.yaml again would name (and create) a run folder.
    data = compose(config_name=f"data/{dataset}").data
    with open_dict(cfg):
        cfg.data = data
        cfg.data.classes = list(model.class_names)
    return cfg


def evaluate(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    model = load_checkpoint(cfg.ckpt_path)
    if cfg.get("data") is None:
        cfg = with_checkpoint_dataset(cfg, model)
    read_as_trained(cfg, model)
    validate(cfg)
    check_task_fits(
        model.task.name, data_task(cfg.data.dataset, cfg.data.get("csv_path")), cfg.data.dataset
    )
    check_fits_data(model, cfg.data.num_classes, cfg.data.in_channels, cfg.data.image_size)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    trainer = build_trainer(cfg)
    # The model brings its own normalisation: the datamodule only serves test images.
    trainer.test(model, datamodule=datamodule)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    metrics.update(
        checkpoint=str(cfg.ckpt_path),
        dataset=cfg.data.dataset,
        seconds=round(time.perf_counter() - started, 1),
    )
    write_metrics(trainer, cfg.paths.output_dir, metrics)
    return metrics


@command_line_app("eval")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    with user_errors_reported():
        evaluate(cfg)


if __name__ == "__main__":
    main()
