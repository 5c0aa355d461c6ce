"""`python train.py resume=<run folder>`: continue a stopped run where its last checkpoint left
it, with the run's own composed config, writing into the same folder."""

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from imgclf.errors import UserError
from imgclf.targets import refuse_unknown_targets

RESUME_PREFIX = "resume="


def resume_arguments(arguments: list[str]) -> list[str]:
    """Command-line arguments with `resume=<run>` replaced by what resuming means to Hydra:
    the run's saved config as the primary config, its folder as the run folder and its last
    checkpoint as `ckpt_path`. The original .hydra/ files are kept; the resumed job's go to
    .hydra/resumed/. Other arguments pass through, after these, so they win."""
    chosen = [argument for argument in arguments if argument.startswith(RESUME_PREFIX)]
    if not chosen:
        return arguments
    run_dir = Path(chosen[-1][len(RESUME_PREFIX) :]).expanduser().resolve()
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        raise UserError(
            f"resume={run_dir}: not a run folder (no .hydra/config.yaml in it). Pass the "
            "folder of a training run, e.g. outputs/runs/<date>_<time>_<model>_<data>."
        )
    saved = OmegaConf.load(config)
    # Hydra composes this file and builds what its `hydra:` section names before any of
    # imgclf's checks: a run folder from elsewhere is checked first.
    refuse_unknown_targets(saved, f"resume={run_dir} (.hydra/config.yaml)")
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise UserError(
            f"resume={run_dir}: the run has no checkpoints/last.ckpt, so it stopped before its "
            "first epoch ended. Start it again instead."
        )
    others = [argument for argument in arguments if not argument.startswith(RESUME_PREFIX)]
    check_same_length(run_dir, saved, others, last)
    if (run_dir / "metrics.json").is_file():  # written last: the run ended, tested
        raise UserError(
            f"resume={run_dir}: the run has finished (its metrics.json is written), so "
            f"nothing is left to continue. To train on from its weights, start a new run: "
            f"python train.py <the run's overrides> model.init_from={last}"
        )
    return [
        f"--config-path={config.parent}",
        "--config-name=config",
        f"hydra.run.dir={run_dir}",
        "hydra.output_subdir=.hydra/resumed",
        f"ckpt_path={last}",
        *others,
    ]


def check_same_length(run_dir: Path, saved: Any, others: list[str], last: Path) -> None:
    """The learning-rate schedule was laid out for the run's epochs and resumes as it was: a
    run cannot be made longer (or shorter) by resuming it."""
    epochs = [a.split("=", 1)[1] for a in others if a.lstrip("+").startswith("trainer.max_epochs=")]
    planned = OmegaConf.select(saved, "trainer.max_epochs")
    if epochs and epochs[-1] != str(planned):
        raise UserError(
            f"resume={run_dir} continues the run as planned, {planned} epochs, on the "
            f"learning-rate schedule laid out for them. To train for {epochs[-1]} epochs "
            f"from its weights, start a new run: python train.py <the run's overrides> "
            f"model.init_from={last} trainer.max_epochs={epochs[-1]}"
        )


def checkpoint_step(path: str | Path) -> int:
    """The optimizer step a checkpoint was saved at."""
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
