"""The checks of user-set config values that run before any data is read: each invalid value
is named with what is allowed, all of them in one message."""

import os
import socket
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import torch
from hydra.utils import get_object
from lightning.fabric.connector import _PRECISION_INPUT
from omegaconf import DictConfig, ListConfig, OmegaConf

from imgclf.data.balance import SAMPLERS
from imgclf.data.cache import CACHE_MODES, unwritable
from imgclf.data.transforms import POLICIES
from imgclf.errors import UserError
from imgclf.targets import ALLOWED_TARGETS, target_problems
from imgclf.tasks import TASK_NAMES, TUNED, MultiLabel
from imgclf.tune import lr_find_problem

# Everything Lightning accepts, and ours.
PRECISIONS = {"auto"} | {
    str(value) for group in typing.get_args(_PRECISION_INPUT) for value in typing.get_args(group)
}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# (key, is it valid, what is allowed); a key absent from the config is not checked.
Rule = tuple[str, Callable[[Any], bool], str]
RULES: list[Rule] = [
    ("optimizer.lr", lambda v: is_number(v) and v > 0, "a learning rate > 0, e.g. 0.001"),
    ("optimizer.weight_decay", lambda v: is_number(v) and v >= 0, "a number >= 0"),
    ("data.batch_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    (
        "data.val_ratio",
        lambda v: is_number(v) and 0 <= v < 1,
        "a fraction in [0, 1), e.g. 0.1 (0: no validation)",
    ),
    ("data.test_ratio", lambda v: is_number(v) and 0 < v < 1, "a fraction in (0, 1), e.g. 0.1"),
    ("data.augment.cutout", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (pixels)"),
    ("data.image_size", lambda v: isinstance(v, int) and v >= 8, "an integer >= 8 (pixels)"),
    ("model.label_smoothing", lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    (
        "model.translate_test_time_margin",
        lambda v: v is None or (is_number(v) and 0 <= v <= 1),
        "a probability margin in [0, 1], e.g. 0.2, or null to shift every image",
    ),
    ("model.net.norm_eps", lambda v: is_number(v) and v > 0, "a number > 0, e.g. 0.1"),
    ("trainer.precision", lambda v: str(v) in PRECISIONS, f"one of {sorted(PRECISIONS)}"),
    (
        "trainer.max_epochs",
        lambda v: v is None or (isinstance(v, int) and (v >= 1 or v == -1)),
        "an integer >= 1 (or -1: until stopped)",
    ),
    # What NumPy's generator accepts (Lightning seeds it too).
    ("seed", lambda v: isinstance(v, int) and 0 <= v < 2**32, "an integer from 0 to 2**32 - 1"),
    ("data.cache", lambda v: v in CACHE_MODES, f"one of {', '.join(CACHE_MODES)}"),
    ("data.cache_max_gb", lambda v: is_number(v) and v >= 0, "a number of GB >= 0"),
    ("data.sampler", lambda v: v in SAMPLERS, "balanced, or null for uniform"),
    (
        "data.num_workers",
        lambda v: v is None or (isinstance(v, int) and v >= 0),
        "an integer >= 0 (0: decode in the training process), or null for one per core",
    ),
    ("data.crop_fraction", lambda v: is_number(v) and 0 < v <= 1, "a fraction in (0, 1]"),
    ("data.augment.policy", lambda v: v in POLICIES, f"one of {', '.join(POLICIES)}"),
    *[
        (
            f"data.augment.{mix}",
            lambda v: is_number(v) and v >= 0,
            "an alpha >= 0, e.g. 0.2 (0: off)",
        )
        for mix in ("mixup", "cutmix")
    ],
    (
        "callbacks.ema.decay",
        lambda v: v is None or (is_number(v) and 0 < v < 1),
        "a decay in (0, 1), e.g. 0.999, or null for no EMA",
    ),
    ("data.augment.erasing", lambda v: is_number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    (
        "data.classes",
        lambda v: v is None or (isinstance(v, ListConfig) and len(set(v)) == len(v) >= 2),
        "a list of at least 2 different class names, e.g. [cat,dog], or null for all",
    ),
    ("model.task", lambda v: v in TASK_NAMES, f"one of {', '.join(TASK_NAMES)}"),
    (
        "model.threshold",
        lambda v: v == TUNED or (is_number(v) and 0 < v < 1),
        f"a probability in (0, 1), e.g. 0.5, or {TUNED} (per class, on validation)",
    ),
    (
        "data.label_separator",
        lambda v: isinstance(v, str) and v.strip() != "" and v != ",",
        "a character that no class name holds, e.g. ';' or '|' (not the CSV's comma)",
    ),
    (
        "model.class_weights",
        lambda v: v in (None, "auto") or (isinstance(v, ListConfig) and all(map(is_number, v))),
        "auto (inverse class frequency), a list of one weight per class, or null",
    ),
]


def dropout_rules(cfg: DictConfig) -> list[Rule]:
    """Every `*dropout*` setting of the network: a probability in [0, 1)."""
    net = OmegaConf.select(cfg, "model.net") or {}
    return [
        (f"model.net.{key}", lambda v: is_number(v) and 0 <= v < 1, "a probability in [0, 1)")
        for key in net
        if "dropout" in str(key)
    ]


def device_problem(cfg: DictConfig) -> str | None:
    trainer = cfg.get("trainer") or {}
    accelerator, devices = trainer.get("accelerator", "auto"), trainer.get("devices", 1)
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        return (
            f"trainer.accelerator={accelerator}, but this machine has no usable GPU: use "
            "trainer=cpu (or trainer.accelerator=auto)"
        )
    if not isinstance(devices, int) or isinstance(devices, bool):
        return None  # "auto", a list of ids: Lightning checks those itself
    gpus = torch.cuda.device_count() if accelerator != "cpu" else 0
    available = gpus or os.cpu_count() or 1
    kind = "GPU(s)" if gpus else "CPU cores"
    if devices < 1 and devices != -1:
        return f"trainer.devices={devices} is not allowed: use an integer >= 1, or -1 for all"
    if devices > available:
        return (
            f"trainer.devices={devices}, but this machine has {available} {kind}: use "
            f"trainer.devices=<1..{available}>"
        )
    return None


def optimizer_problem(cfg: DictConfig) -> str | None:
    """Muon needs a network that names its parameter groups (filters, biases, head)."""
    optimizer = OmegaConf.select(cfg, "optimizer._target_")
    net = OmegaConf.select(cfg, "model.net._target_")
    # Networks are built by classes and by functions (cifar_resnet18, timm_network).
    if optimizer != "imgclf.optim.Muon" or net not in ALLOWED_TARGETS:
        return None
    if hasattr(get_object(net), "parameter_groups"):
        return None
    return (
        f"optimizer=muon needs a network that names its parameter groups, and {net} does not: "
        "use model=airbench, or optimizer=sgd or adam with this model"
    )


# Seconds to wait for a tracking server to accept a connection.
TRACKING_SERVER_TIMEOUT = 10
# Tracking URIs without a scheme that MLflow does not read as a folder.
REMOTE_TRACKING = {"databricks", "databricks-uc", "uc"}


def tracking_folder(uri: str) -> Path | None:
    """The local folder an MLflow tracking URI writes into (its SQLite file's, or a file
    store's), None for a server."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":  # sqlite:///relative.db, sqlite:////absolute.db
        return Path(unquote(parsed.path.removeprefix("/"))).parent
    if parsed.scheme == "file" or (parsed.scheme == "" and uri not in REMOTE_TRACKING):
        return Path(unquote(parsed.path))
    return None


def unreachable(uri: str, seconds: float = TRACKING_SERVER_TIMEOUT) -> str | None:
    """Why the host and port of an http(s) tracking server cannot be connected to, or None."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=seconds).close()
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__
    return None


def check_outputs_writable(cfg: DictConfig) -> None:
    """Each logger's local store can be written, and its server reached, before anything is
    trained: MLflow alone retries an unwritable SQLite file, or a server it cannot resolve,
    for minutes, then fails with a database or connection error."""
    for name, logger in (cfg.get("logger") or {}).items():
        uri = (logger or {}).get("tracking_uri")
        offline = unreachable(str(uri)) if uri else None
        if offline:
            raise UserError(
                f"logger.{name}.tracking_uri={uri}: the tracking server cannot be reached "
                f"({offline}). Start it or check the address; without it, track into a local "
                f"store (logger.{name}.tracking_uri=sqlite:///outputs/mlflow.db)."
            )
        folder = tracking_folder(str(uri)) if uri else None
        problem = folder is not None and unwritable(folder.expanduser())
        if problem:
            raise UserError(
                f"logger.{name}.tracking_uri={uri}: cannot write into {folder} ({problem}). "
                f"Point it at a folder you can write to, e.g. logger.{name}.tracking_uri="
                "sqlite:///outputs/mlflow.db, or choose another logger (logger=tensorboard)."
            )


def split_problem(cfg: DictConfig) -> str | None:
    """Validation and test carved out of the training images must leave some to train on."""
    val, test = OmegaConf.select(cfg, "data.val_ratio"), OmegaConf.select(cfg, "data.test_ratio")
    if is_number(val) and is_number(test) and val + test >= 1:
        return (
            f"data.val_ratio={val} and data.test_ratio={test} take {val + test:.0%} of the "
            "training images, leaving none to train on: keep their sum below 1, e.g. "
            "data.val_ratio=0.1 data.test_ratio=0.1"
        )
    return None


def multi_label_problems(cfg: DictConfig) -> list[str]:
    """The balanced sampler draws images by their one class: single-label data only."""
    if OmegaConf.select(cfg, "model.task", default=None) != MultiLabel.name:
        return []
    if OmegaConf.select(cfg, "data.sampler", default=None) is not None:
        return [
            "data.sampler=balanced draws images by their one class, and these images hold any "
            "number: use data.sampler=null, and model.class_weights=auto for rare classes"
        ]
    return []


def validate(cfg: DictConfig) -> None:
    """Raise one UserError listing every invalid value, naming the key, the value and what is
    allowed."""
    problems = []
    for key, is_valid, allowed in [*RULES, *dropout_rules(cfg)]:
        missing = object()
        value = OmegaConf.select(cfg, key, default=missing)
        if value is not missing and not is_valid(value):
            problems.append(f"{key}={value} is not allowed: use {allowed}")
    checks = (
        device_problem(cfg), optimizer_problem(cfg), lr_find_problem(cfg), split_problem(cfg)
    )  # fmt: skip
    problems += [problem for problem in checks if problem]
    problems += target_problems(cfg)
    problems += multi_label_problems(cfg)
    if problems:
        raise UserError("invalid configuration:\n  " + "\n  ".join(problems))
