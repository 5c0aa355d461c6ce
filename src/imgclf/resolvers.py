"""The resolvers imgclf's configs use (`${imgclf_...:}`), registered by `register_resolvers`
before Hydra composes a config: every app calls it, and so does a sweep's cluster job."""

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from imgclf.data.image_listing import csv_class_names, csv_is_multi_label, find_class_names
from imgclf.data.sources import IMAGE_CSV
from imgclf.models.pretrained import pretrained_crop_fraction, pretrained_image_size
from imgclf.run_folder import new_run_folder
from imgclf.sweeps import in_multirun
from imgclf.tasks import MultiLabel, SingleLabel, headline_score


def folder_class_count(root: str) -> int:
    """`${imgclf_folder_class_count:${data.data_dir}}`: the user's folder decides the class
    count, so the model is built for it with no extra flag."""
    return len(find_class_names(Path(root).expanduser()))


def csv_class_count(csv_path: str, separator: str = ";") -> int:
    """`${imgclf_csv_class_count:${data.csv_path},${data.label_separator}}`: the labels in the
    CSV."""
    return len(csv_class_names(Path(csv_path).expanduser(), separator))


def data_task(dataset: str, csv_path: str | None) -> str:
    """`${imgclf_data_task:${data.dataset},${oc.select:data.csv_path,null}}`: multi_label for a
    CSV with a `labels` column, else single_label: the data decides the model's task."""
    if dataset == IMAGE_CSV and csv_path and csv_is_multi_label(Path(csv_path).expanduser()):
        return MultiLabel.name
    return SingleLabel.name


def task_score(task: str) -> str:
    """`${imgclf_task_score:${model.task}}`: the score that judges a run (acc, map), which the
    checkpoints and the sweeps monitor by default."""
    return headline_score(task)


def subset_size(classes: Any, class_count: int) -> int:
    """`${imgclf_subset_size:${data.classes},N}`: the classes kept by `data.classes`, else all."""
    return len(classes) if classes else class_count


def model_label(choice: str, name: str | None) -> str:
    """`${imgclf_model_label:${hydra:runtime.choices.model},${oc.select:model.name,null}}`: the
    model in a run folder's name, e.g. deep_cnn, or timm-convnext_nano."""
    return f"{choice}-{name}" if name else choice


def chosen_model(name: str | None) -> str | None:
    """`${imgclf_chosen_model:${oc.select:model.name,null}}`: the model as the command chose it
    (deep_cnn, timm-convnext_nano) while Hydra runs the app; null in a config composed
    without it (tests)."""
    if not HydraConfig.initialized():
        return None
    return model_label(HydraConfig.get().runtime.choices["model"], name)


def sweep_job_label() -> str:
    """`${imgclf_sweep_job:}`: in a job of a multirun sweep, " #<job> <its overrides>" (e.g.
    " #1 optimizer.lr=0.003", after the job's folder and summary.csv row), which tells the
    sweep's MLflow runs apart; empty in a single run."""
    if not in_multirun():
        return ""
    job = HydraConfig.get()
    return f" #{job.job.num} {' '.join(job.overrides.task)}".rstrip()


def absolute_path(path: str) -> str:
    """`${imgclf_absolute_path:outputs}`: a path that means the same from any folder, for
    what is stored for later (MLflow's artifact location)."""
    return str(Path(path).expanduser().resolve())


RESOLVERS = {
    "imgclf_folder_class_count": folder_class_count,
    "imgclf_csv_class_count": csv_class_count,
    "imgclf_data_task": data_task,
    "imgclf_task_score": task_score,
    "imgclf_subset_size": subset_size,
    "imgclf_model_label": model_label,
    "imgclf_chosen_model": chosen_model,
    "imgclf_absolute_path": absolute_path,
    "imgclf_sweep_job": sweep_job_label,
    "imgclf_new_run_folder": new_run_folder,
    # `${imgclf_pretrained_image_size:<net _target_>,<model.name>,<default>}`: image files are
    # read at a timm/torchvision network's pretrained input size (and crop), else the default.
    "imgclf_pretrained_image_size": pretrained_image_size,
    "imgclf_pretrained_crop_fraction": pretrained_crop_fraction,
}


# OmegaConf caches a resolver's value by the text of its arguments (`${data.csv_path}`), not
# by their values, and Hydra resolves some keys while it merges the defaults, before the
# command line's overrides: a cached value would keep what the config said without them (a
# sweep's jobs took a multi-label CSV for single-label data). Only the run folder is cached,
# like Hydra's `now`: it is created once, and every read must give that folder.
CACHED_RESOLVERS = {"imgclf_new_run_folder"}


def register_resolvers() -> None:
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver, use_cache=name in CACHED_RESOLVERS)
