"""The benchmarks' configs, kept beside them instead of in the package's conf/: train.py's
composition (so data=..., model=..., trainer=... all apply) and the benchmark's own settings
under its name, registered in Hydra's ConfigStore before the app composes them."""

from typing import Any

from hydra.core.config_store import ConfigStore


def register_benchmark_config(name: str, settings: dict[str, Any], run_name: str) -> None:
    """The config `name`: train.yaml, then `settings` at the key `name`; its runs go to
    `<log_dir>/benchmark/<time>_<run_name>`."""
    ConfigStore.instance().store(
        name=name,
        node={
            "defaults": ["train", "_self_"],
            "task_name": name,
            name: settings,
            "hydra": {
                "run": {"dir": "${paths.log_dir}/benchmark/${now:%Y-%m-%d_%H-%M-%S}_" + run_name}
            },
        },
    )
