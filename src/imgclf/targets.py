"""The one gate for `_target_`s. Configs, checkpoints and resumed run folders may name only
the networks, optimizers, schedules, data, loggers, callbacks and plugins imgclf offers: Hydra
imports and calls whatever a `_target_` names, so a file from elsewhere naming `os.system` or
`torch.save` would otherwise run it. Checked before anything is imported or built."""

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from imgclf.data.sources import USER_DATASETS
from imgclf.errors import UserError

# Old names of what imgclf offers, for the checkpoints and run folders that name them.
RENAMED_TARGETS = {
    "imgclf.models.DeepCNN": "imgclf.models.VggCNN",
    "imgclf.checkpoint_io.AtomicCheckpointIO": "imgclf.checkpoints.AtomicCheckpointIO",
}

# imgclf 0.3 read both kinds of data with one class (`rename_old_datamodule`).
OLD_DATAMODULE = "imgclf.data.ImageDataModule"

ALLOWED_TARGETS = frozenset(
    RENAMED_TARGETS.keys()
    | {
        # The model and its networks
        "imgclf.module.ImageClassifier",
        "imgclf.models.SimpleCNN",
        "imgclf.models.VggCNN",
        "imgclf.models.cifar_resnet18",
        "imgclf.models.AirbenchNet",
        "imgclf.models.pretrained.timm_network",
        "imgclf.models.pretrained.torchvision_network",
        # Optimizers and schedules
        "torch.optim.Adam",
        "torch.optim.AdamW",
        "torch.optim.SGD",
        "imgclf.optim.Muon",
        "imgclf.schedulers.cosine",
        "imgclf.schedulers.one_cycle",
        "imgclf.schedulers.linear_decay",
        # Data
        OLD_DATAMODULE,
        "imgclf.data.BuiltinDataModule",
        "imgclf.data.ImageFilesDataModule",
        "imgclf.data.ImageAugment",
        "imgclf.data.BatchAugment",
        # The Trainer, its loggers, callbacks and checkpoint writer
        "lightning.pytorch.Trainer",
        "lightning.pytorch.loggers.TensorBoardLogger",
        "lightning.pytorch.loggers.CSVLogger",
        "lightning.pytorch.loggers.MLFlowLogger",
        "lightning.pytorch.callbacks.ModelCheckpoint",
        "lightning.pytorch.callbacks.LearningRateMonitor",
        "lightning.pytorch.callbacks.EarlyStopping",
        "lightning.pytorch.callbacks.TQDMProgressBar",
        "imgclf.checkpoints.AtomicCheckpointIO",
        "imgclf.callbacks.ClassificationReportCallback",
        "imgclf.callbacks.ConfusionMatrixCallback",
        "imgclf.callbacks.DataExplorationCallback",
        "imgclf.callbacks.DivergenceGuard",
        "imgclf.callbacks.FirstLayerFiltersCallback",
        "imgclf.callbacks.FreezeParameters",
        "imgclf.callbacks.GradCamCallback",
        "imgclf.callbacks.LabelViewsCallback",
        "imgclf.callbacks.LearningCurvesCallback",
        "imgclf.callbacks.PredictionGridCallback",
        "imgclf.callbacks.RunReportCallback",
        "imgclf.callbacks.StartupTimer",
        "imgclf.callbacks.weight_ema",
        # Sweeps: their summary, imgclf's Optuna sweeper and its samplers
        "imgclf.sweeps.SweepSummaryCallback",
        "hydra_plugins.imgclf_optuna_sweeper.OptunaSweeper",
        "optuna.samplers.TPESampler",
        "optuna.samplers.RandomSampler",
    }
)


KeyPath = tuple[str | int, ...]


def targets_in(config: Any, path: KeyPath = ()) -> list[tuple[KeyPath, Any]]:
    """(where, value) of every `_target_` in `config`, nested anywhere, unresolved: targets
    are literal, and resolving could run the resolvers."""
    if isinstance(config, DictConfig | ListConfig):
        config = OmegaConf.to_container(config, resolve=False)
    if isinstance(config, dict):
        children = config.items()
    elif isinstance(config, list):
        children = enumerate(config)
    else:
        return []
    found = []
    for name, value in children:
        if name == "_target_":
            found.append(((*path, name), value))
        else:
            found += targets_in(value, (*path, name))
    return found


def dotted(path: KeyPath) -> str:
    """`trainer.plugins[0]._target_`, as a user names a key."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)[1:]


def rename_old_targets(config: DictConfig | dict) -> None:
    """Every `_target_` in `config` (a composed config, a checkpoint's hyperparameters) that
    names something imgclf has renamed, under its current name, in place: what an earlier
    version wrote still builds."""
    for path, target in targets_in(config):
        if target not in RENAMED_TARGETS:
            continue
        if isinstance(config, DictConfig):
            key = ".".join(str(part) for part in path)
            OmegaConf.update(config, key, RENAMED_TARGETS[target], merge=False)
            continue
        node: Any = config
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = RENAMED_TARGETS[target]


def rename_old_datamodule(cfg: DictConfig) -> None:
    """A run config of imgclf 0.3 (a run folder resumed) with the datamodule of its dataset,
    in place; image files have nothing to download."""
    data = cfg.get("data")
    if data is None or data.get("_target_") != OLD_DATAMODULE:
        return
    with open_dict(data):
        if data.dataset in USER_DATASETS:
            data._target_ = "imgclf.data.ImageFilesDataModule"
            data.pop("download", None)
        else:
            data._target_ = "imgclf.data.BuiltinDataModule"


def target_problems(config: Any) -> list[str]:
    """One line per `_target_` in `config` (nested anywhere) that is not allowed."""
    return [
        f"{dotted(path)}={target} is not one of the classes imgclf offers"
        for path, target in targets_in(config)
        if target not in ALLOWED_TARGETS
    ]


def refuse_unknown_targets(config: Any, source: str) -> None:
    """Raise one UserError naming every `_target_` in `config` that is not allowed."""
    if problems := target_problems(config):
        raise UserError(
            f"{source} names code imgclf does not run: {'; '.join(problems)}. Only imgclf's "
            "networks, optimizers, schedules, data, loggers and callbacks can be named "
            "(imgclf.targets.ALLOWED_TARGETS)."
        )
