"""imgclf's Hydra sweeper on Optuna's current ask-and-tell API: `python train.py
hparams_search=optuna`. Hydra finds sweepers only in the `hydra_plugins` namespace, hence this
module; the search itself is imgclf.search. Its config: conf/hydra/sweeper/optuna.yaml.

Why our own and not hydra-optuna-sweeper: 1.3 pins Optuna < 3 (2021, no SQLAlchemy 2), and
1.4.0rc3 needs release candidates of hydra-core and OmegaConf under every config; both run
`n_trials` per process and number job folders per process, so a restarted sweep runs all its
trials again and workers sharing a study and a sweep folder overwrite each other's jobs."""

import logging
from pathlib import Path
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        n_trials: int,
        study_name: str,
        direction: str,
        sampler: Any,  # an Optuna sampler: Hydra instantiates the sweeper's config recursively
        storage: str | None = None,
        n_jobs: int = 1,
        heartbeat_interval: int = 60,
        grace_period: int | None = None,
        params: DictConfig | None = None,
    ) -> None:
        self.n_trials = n_trials
        self.study_name = study_name
        self.direction = direction
        self.sampler = sampler
        self.storage = storage
        self.n_jobs = n_jobs
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.params = params

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from imgclf.errors import user_errors_reported

        with user_errors_reported():
            return self.search(arguments)

    def search(self, arguments: list[str]) -> None:
        # Imported here: Hydra imports every plugin module on each start, sweeping or not.
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from imgclf import search
        from imgclf.errors import UserError

        if self.n_trials < 1 or self.n_jobs < 1:
            raise UserError("hydra.sweeper.n_trials and hydra.sweeper.n_jobs must be at least 1")
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        params = [f"{key}={value}" for key, value in (self.params or {}).items()]
        space, fixed = search.search_space(parser.parse_overrides([*params, *arguments]))
        if not space:
            model = self.config.hydra.runtime.choices.get("model")
            raise UserError(
                f"nothing to search: model={model} has no search_space/optuna/{model}.yaml. Add "
                "one to a config folder of yours (--config-dir), or name the keys to search on the "
                "command line, e.g. optimizer.lr='tag(log, interval(1e-4, 1e-2))'"
            )
        self.refuse_unknown_keys(space)
        study = search.open_study(
            self.storage, self.study_name, self.direction, self.sampler,
            self.heartbeat_interval, self.grace_period,
        )  # fmt: skip
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        log.info("study %s in %s: %d trials in all", self.study_name, self.storage, self.n_trials)

        while batch := self.claim_batch(study, space):
            # Job folders are named by trial number, unique in the study, so workers sharing
            # a sweep folder never write into each other's.
            jobs = [
                [*fixed, *search.trial_overrides(trial), f"hydra.sweep.subdir={trial.number}"]
                for trial in batch
            ]
            try:
                with search.heartbeat(study, batch):
                    results = self.launcher.launch(jobs, initial_job_idx=batch[0].number)
            except BaseException:  # SIGTERM, Ctrl-C, a launcher error: run these again later
                search.release(study, batch)
                raise
            for trial, result in zip(batch, results, strict=True):
                search.tell_result(study, trial, result)
        self.write_results(study, sweep_dir)

    def claim_batch(self, study: Any, space: dict) -> list:
        from imgclf.search import claim_trial

        batch = []
        while len(batch) < self.n_jobs and (trial := claim_trial(study, self.n_trials, space)):
            batch.append(trial)
        return batch

    def refuse_unknown_keys(self, space: dict) -> None:
        """A searched key the composed config lacks (e.g. deep_cnn's dropout with another
        model) would fail every trial; say so once, before any runs."""
        from imgclf.errors import UserError

        missing = [
            key
            for key in space
            if not key.startswith(("+", "~", "hydra."))
            and OmegaConf.select(self.config, key, default=KeyError) is KeyError
        ]
        if missing:
            model = self.config.hydra.runtime.choices.get("model")
            raise UserError(
                f"hydra.sweeper.params searches {', '.join(missing)}, which this config "
                f"(model={model}) does not have. Search the model's own keys (its "
                f"search_space/optuna/{model}.yaml lists some), or prefix a new key with +."
            )

    def write_results(self, study: Any, sweep_dir: Path) -> None:
        from optuna.trial import TrialState

        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            log.error("no trial of study %s completed", self.study_name)
            return
        best = study.best_trial
        results = {
            "name": self.study_name,
            "best_trial": best.number,
            "best_params": best.params,
            "best_value": best.value,
        }
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        log.info("best of study %s: trial %d, %s, %s", self.study_name, best.number,
                 best.value, best.params)  # fmt: skip
