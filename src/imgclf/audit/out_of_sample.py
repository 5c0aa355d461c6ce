"""Out-of-sample predictions for every audited image: K-fold cross-validation on the training
images (each fold predicted by a model trained on the others; validation and test images by
the fold models' average, all trained on training images only), or an existing checkpoint's
predictions. Each fold model's embeddings of every image, joined, give one embedding space."""

import logging
import math
import time
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from imgclf.audit.folds import check_fold_count, fold_of_each_image
from imgclf.audit.outputs import ModelOutputs, classifier_outputs, content_hashes
from imgclf.builders import build_model, instantiate_group
from imgclf.classifier import Classifier
from imgclf.data.datamodule import ImageDataModule
from imgclf.errors import UserError
from imgclf.module import load_checkpoint
from imgclf.precision import resolve_precision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditedImages:
    """Every audited image, the splits one after another (train, val, test)."""

    class_names: list[str]
    splits: np.ndarray  # str (N,): the split of each image
    positions: np.ndarray  # int (N,): its index within its split
    ids: np.ndarray  # str (N,): its name (a file's path, or "train/123")
    labels: np.ndarray  # int (N,): its given class
    probabilities: np.ndarray  # float32 (N, classes), out-of-sample where `out_of_sample`
    embeddings: np.ndarray  # float32 (N, features), unit length
    hashes: np.ndarray  # str (N,): of its pixels
    out_of_sample: np.ndarray  # bool (N,): predicted by a model that did not train on it
    # What the predictions came from, in words, for the report.
    predicted_by: str


def trainer_for_audit(cfg: DictConfig) -> L.Trainer:
    """A Trainer of the config's recipe (callbacks included), logging and saving nothing: the
    fold models are means to their predictions."""
    trainer = instantiate(
        cfg.trainer,
        callbacks=instantiate_group(cfg.get("callbacks")),
        logger=False,
        enable_checkpointing=False,
        precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
    )
    if trainer.world_size > 1:
        raise UserError(
            f"the audit trains its fold models in one process; it was given {trainer.world_size} "
            "(trainer.devices, trainer.num_nodes): set trainer=default"
        )
    return trainer


def predicted_outputs(
    classifier: Classifier, trainer: L.Trainer, datamodule: ImageDataModule
) -> dict[str, ModelOutputs]:
    """The classifier's outputs for every split, on the trainer's device and in its
    precision."""
    mirrored = bool(getattr(datamodule.augment, "horizontal_flip", False))
    return {
        split: classifier_outputs(
            classifier,
            datamodule,
            split,
            trainer.strategy.root_device,
            trainer.precision_plugin.forward_context,
            mirrored,
        )
        for split in datamodule.splits
    }


def cross_validated(cfg: DictConfig, datamodule: ImageDataModule) -> AuditedImages:
    """K fold models (`audit.folds`), each trained by the config's recipe on the training
    images of the other folds."""
    folds = cfg.audit.folds
    train = datamodule.splits["train"]
    labels = train.labels.cpu()
    check_fold_count(folds, labels, datamodule.class_names)
    fold = fold_of_each_image(labels, folds, cfg.seed)
    probabilities = {
        split: torch.zeros(len(data), len(datamodule.class_names))
        for split, data in datamodule.splits.items()
    }
    embeddings: dict[str, list[torch.Tensor]] = {split: [] for split in datamodule.splits}
    for k in range(folds):
        started = time.perf_counter()
        L.seed_everything(cfg.seed + k, workers=True)
        model = build_model(cfg)
        trainer = trainer_for_audit(cfg)
        trained_on = torch.nonzero(fold != k).flatten()
        trainer.fit(model, datamodule=datamodule.with_splits({"train": train.subset(trained_on)}))
        for split, outputs in predicted_outputs(model.classifier, trainer, datamodule).items():
            predicted = model.task.probabilities(outputs.logits)
            if split == "train":
                held_out = fold == k
                probabilities[split][held_out] = predicted[held_out]
            else:
                probabilities[split] += predicted / folds
            embeddings[split].append(outputs.embeddings)
        log.info(
            "fold %d/%d: trained on %s images and predicted %s in %.0f s",
            k + 1,
            folds,
            f"{len(trained_on):,}",
            f"{int((fold == k).sum()):,}",
            time.perf_counter() - started,
        )
    # The folds' embeddings side by side, scaled back to unit length: the cosine similarity
    # of two images is then the mean of the fold models' similarities.
    joined = {
        split: torch.cat(parts, dim=1) / math.sqrt(folds) for split, parts in embeddings.items()
    }
    predicted_by = (
        f"{folds}-fold cross-validation: each training image predicted by the model that did "
        f"not train on its fold, validation and test images by the average of the {folds} "
        "fold models"
    )
    out_of_sample = {
        split: torch.ones(len(data), dtype=torch.bool) for split, data in datamodule.splits.items()
    }
    return audited(datamodule, probabilities, joined, out_of_sample, predicted_by)


def from_checkpoint(cfg: DictConfig, datamodule: ImageDataModule) -> AuditedImages:
    """A trained model's predictions (`ckpt_path`). Its training split is in-sample when it
    was trained on this dataset: its label errors are not judged, as the model has learnt
    their given labels."""
    model = load_checkpoint(cfg.ckpt_path)
    if model.class_names != datamodule.class_names:
        raise UserError(
            f"ckpt_path={cfg.ckpt_path} classifies {model.class_names}, but the data's classes "
            f"are {datamodule.class_names}: audit with the data the model was trained on "
            "(data=..., data.classes=[...]), or leave ckpt_path out to train fold models"
        )
    trainer = trainer_for_audit(cfg)
    outputs = predicted_outputs(model.classifier, trainer, datamodule)
    trained_here = model.hparams.get("dataset") == datamodule.dataset
    out_of_sample = {
        split: torch.full((len(data),), not (trained_here and split == "train"))
        for split, data in datamodule.splits.items()
    }
    splits = ", ".join(
        f"{split} {'out-of-sample' if bool(flags.all()) else 'in-sample'}"
        for split, flags in out_of_sample.items()
    )
    predicted_by = (
        f"the checkpoint {cfg.ckpt_path}, trained on {model.hparams.get('dataset')} ({splits}: "
        "label errors are judged on the out-of-sample splits only)"
    )
    return audited(
        datamodule,
        {split: model.task.probabilities(output.logits) for split, output in outputs.items()},
        {split: output.embeddings for split, output in outputs.items()},
        out_of_sample,
        predicted_by,
    )


def audited(
    datamodule: ImageDataModule,
    probabilities: dict[str, torch.Tensor],
    embeddings: dict[str, torch.Tensor],
    out_of_sample: dict[str, torch.Tensor],
    predicted_by: str,
) -> AuditedImages:
    splits = list(datamodule.splits)

    def joined(parts: dict[str, torch.Tensor | np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(parts[split]) for split in splits])

    return AuditedImages(
        class_names=list(datamodule.class_names),
        splits=np.concatenate([[split] * len(datamodule.splits[split]) for split in splits]),
        positions=np.concatenate([np.arange(len(datamodule.splits[split])) for split in splits]),
        ids=joined({split: data.ids for split, data in datamodule.splits.items()}),
        labels=joined({split: data.labels.cpu() for split, data in datamodule.splits.items()}),
        probabilities=joined(probabilities).astype(np.float32),
        embeddings=joined(embeddings).astype(np.float32),
        hashes=joined({split: content_hashes(datamodule, split) for split in splits}),
        out_of_sample=joined(out_of_sample),
        predicted_by=predicted_by,
    )
