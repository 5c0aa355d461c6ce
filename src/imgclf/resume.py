"""`python train.py resume=<run folder>`: continue a stopped run where its last checkpoint left
it, with the run's own composed config, writing into the same folder. The same rebuilding of a
run from its saved config starts DDP's other processes (imgclf.ddp)."""

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from imgclf.checkpoints import LAST_CHECKPOINT, checkpoint_step
from imgclf.errors import UserError
from imgclf.overrides import override
from imgclf.run_folder import METRICS_FILE, SAVED_CONFIG, is_locked, is_run_folder
from imgclf.targets import refuse_unknown_targets

RESUME_PREFIX = "resume="


def saved_config_arguments(config_folder: Path, run_dir: Path, choices: Mapping) -> list[str]:
    """Arguments that make Hydra run the config saved in `config_folder` again, in `run_dir`.
    The saved config keeps interpolations that read Hydra's group choices (the model's label
    in run names and the report's title), and a config composed from a file has none: the
    run's own `choices` are given back. Every value is quoted, never parsed as syntax."""
    return [
        f"--config-path={config_folder}",
        "--config-name=config",
        override("hydra.run.dir", run_dir),
        *(
            override(f"+hydra.runtime.choices.{group}", option)
            for group, option in choices.items()
            if not group.startswith("hydra")  # Hydra sets its own
        ),
    ]


def resumed_run_arguments(arguments: list[str]) -> list[str] | None:
    """Command-line arguments with `resume=<run>` replaced by what resuming means to Hydra,
    or None without `resume=`: the run's saved config as the primary config, its folder as
    the run folder and its last checkpoint as `ckpt_path` (none: the run starts again, in its
    folder). The original .hydra/ files are kept; the resumed job's go to .hydra/resumed/.
    Other arguments pass through, after these, so they win."""
    chosen = [argument for argument in arguments if argument.startswith(RESUME_PREFIX)]
    if not chosen:
        return None
    run_dir = Path(chosen[-1][len(RESUME_PREFIX) :]).expanduser().resolve()
    if not is_run_folder(run_dir):
        raise UserError(
            f"resume={run_dir}: not a run folder (no .hydra/config.yaml in it). Pass the "
            "folder of a training run, e.g. outputs/runs/<date>_<time>_<model>_<data>."
        )
    saved = OmegaConf.load(run_dir / SAVED_CONFIG)
    # Hydra composes this file and builds what its `hydra:` section names before any of
    # imgclf's checks: a run folder from elsewhere is checked first.
    refuse_unknown_targets(saved, f"resume={run_dir} (.hydra/config.yaml)")
    if is_locked(run_dir):
        raise UserError(f"resume={run_dir}: the run is still running; wait for it or stop it")
    others = [argument for argument in arguments if not argument.startswith(RESUME_PREFIX)]
    last = run_dir / LAST_CHECKPOINT
    check_same_length(run_dir, saved, others, last)
    if (run_dir / METRICS_FILE).is_file():  # written last: the run ended, tested
        raise UserError(
            f"resume={run_dir}: the run has finished (its metrics.json is written), so "
            f"nothing is left to continue. To train on from its weights, start a new run: "
            f"python train.py <the run's overrides> model.init_from={last}"
        )
    if last.is_file():
        checkpoint_step(last)  # readable, or one message now
    else:
        print(
            f"imgclf: resume={run_dir}: the run stopped before its first checkpoint; it "
            "starts again from the beginning, in its folder",
            file=sys.stderr,
        )
    return [
        *saved_config_arguments(run_dir / ".hydra", run_dir, saved_choices(run_dir)),
        "hydra.output_subdir=.hydra/resumed",
        override("ckpt_path", last if last.is_file() else None),
        *others,
    ]


def saved_choices(run_dir: Path) -> dict[str, Any]:
    """The group choices the run was composed with, from its .hydra/hydra.yaml."""
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    if not hydra_file.is_file():
        return {}
    choices = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices") or {}
    return OmegaConf.to_container(choices)


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
