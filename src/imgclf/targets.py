"""The one gate for `_target_`s. Configs, checkpoints and resumed run folders may name only
the networks, optimizers, schedules, data, loggers, callbacks and plugins imgclf offers: Hydra
imports and calls whatever a `_target_` names, so a file from elsewhere naming `os.system` or
`torch.save` would otherwise run it. Checked before anything is imported or built."""

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from imgclf.errors import UserError

ALLOWED_TARGETS = frozenset(
    {
        # The model and its networks
        "imgclf.module.ImageClassifier",
        "imgclf.models.SimpleCNN",
        "imgclf.models.DeepCNN",
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
        "imgclf.data.ImageDataModule",
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
        "imgclf.checkpoint_io.AtomicCheckpointIO",
        "imgclf.callbacks.ClassificationReportCallback",
        "imgclf.callbacks.ConfusionMatrixCallback",
        "imgclf.callbacks.DataExplorationCallback",
        "imgclf.callbacks.DivergenceGuard",
        "imgclf.callbacks.FirstLayerFiltersCallback",
        "imgclf.callbacks.FreezeParameters",
        "imgclf.callbacks.GradCamCallback",
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


def target_problems(config: Any, key: str = "") -> list[str]:
    """One line per `_target_` in `config` (nested anywhere) that is not allowed."""
    if isinstance(config, DictConfig | ListConfig):
        # Unresolved: `_target_`s are literal, and resolving could run the resolvers.
        config = OmegaConf.to_container(config, resolve=False)
    if isinstance(config, dict):
        problems = []
        for name, value in config.items():
            child = f"{key}.{name}" if key else str(name)
            if name == "_target_" and value not in ALLOWED_TARGETS:
                problems.append(f"{child}={value} is not one of the classes imgclf offers")
            else:
                problems += target_problems(value, child)
        return problems
    if isinstance(config, list):
        return [p for i, value in enumerate(config) for p in target_problems(value, f"{key}[{i}]")]
    return []


def refuse_unknown_targets(config: Any, source: str) -> None:
    """Raise one UserError naming every `_target_` in `config` that is not allowed."""
    if problems := target_problems(config):
        raise UserError(
            f"{source} names code imgclf does not run: {'; '.join(problems)}. Only imgclf's "
            "networks, optimizers, schedules, data, loggers and callbacks can be named "
            "(imgclf.targets.ALLOWED_TARGETS)."
        )
