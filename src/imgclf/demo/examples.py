"""The page's examples: the first test image of each class of the model's data, written into
the page's folder with its true label, so a visitor can click one and see it classified."""

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torchvision.io import write_png

from imgclf.builders import read_as_trained
from imgclf.data.sources import USER_DATASETS
from imgclf.data.splits import Labelled, LabelledImages
from imgclf.errors import UserError
from imgclf.module import ImageClassifier
from imgclf.run_folder import SAVED_CONFIG, run_folder_of
from imgclf.targets import refuse_unknown_targets, rename_old_datamodule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    path: Path
    # The image's true class, or a multi-label image's classes.
    label: str


def examples_data(cfg: DictConfig, model: ImageClassifier) -> DictConfig | None:
    """The data config whose test split the examples come from: `data=...` on the command
    line, else the one the checkpoint's run folder saved, else the built-in dataset the model
    was trained on. None for image files of a checkpoint away from its run folder."""
    if cfg.get("data") is not None:
        root = cfg
    elif (saved := run_folder_of(cfg.ckpt_path) / SAVED_CONFIG).is_file():
        # The run's own config, with this machine's paths: where the datasets are now.
        root = OmegaConf.load(saved)
        refuse_unknown_targets(root.get("data"), str(saved))
        rename_old_datamodule(root)
        with open_dict(root):
            root.paths = cfg.paths
    elif model.hparams.dataset not in USER_DATASETS:
        root = OmegaConf.create({"paths": cfg.paths})
        with open_dict(root):
            root.data = compose(config_name=f"data/{model.hparams.dataset}").data
    else:
        return None
    with open_dict(root.data):
        if "download" in root.data:
            root.data.download = False  # a demo does not fetch a dataset for its examples
        root.data.classes = list(model.class_names)
    read_as_trained(root, model)
    return root.data


def first_of_each_class(labels: torch.Tensor, num_classes: int, most: int) -> list[int]:
    """The index of the first image of each class (multi-hot labels: holding it), in class
    order, each image once, at most `most`."""
    indices: list[int] = []
    for label in range(num_classes):
        holds = labels[:, label] > 0 if labels.ndim == 2 else labels == label
        found = holds.nonzero()
        if len(found) and int(found[0]) not in indices:
            indices.append(int(found[0]))
    return indices[:most]


def file_name(index: int, label: str, suffix: str) -> str:
    return f"{index:02d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', label)[:40]}{suffix}"


def write_examples(
    test: Labelled, indices: list[int], labels: list[str], folder: Path
) -> list[Path]:
    """In-memory images as PNGs; image files copied as they are (the page classifies the
    same bytes a user would upload)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, (index, label) in enumerate(zip(indices, labels, strict=True)):
        if isinstance(test, LabelledImages):
            path = folder / file_name(number, label, ".png")
            write_png(test.images[index].cpu(), str(path))
        else:
            source = Path(str(test.paths[index]))
            path = folder / file_name(number, label, source.suffix)
            shutil.copyfile(source, path)
        paths.append(path)
    return paths


def pick_examples(
    cfg: DictConfig, model: ImageClassifier, folder: Path, most: int
) -> list[Example]:
    """Up to `most` test images, one of each class, copied into `folder`; none (and a log
    line saying why) when the model's data cannot be found: the page works without them."""
    if most <= 0:
        return []
    try:
        data = examples_data(cfg, model)
        if data is None:
            log.info(
                "no examples: the checkpoint is not in its run folder and was trained on your "
                "own images; add data=%s with their folder or CSV to show some",
                model.hparams.dataset,
            )
            return []
        datamodule = instantiate(data)
        test = datamodule.split(datamodule.listed())["test"]
    except (UserError, OSError) as error:
        log.warning("no examples: the model's test images cannot be read (%s)", error)
        return []
    indices = first_of_each_class(test.labels.cpu(), len(model.class_names), most)
    labels = [model.task.label_names(test.labels[index], model.class_names) for index in indices]
    paths = write_examples(test, indices, labels, folder)
    return [Example(path, label) for path, label in zip(paths, labels, strict=True)]
