"""What imgclf's command-line apps share before Hydra runs: where their configs are, the
resolvers those configs use, and one check of the command line, so that typos and run
folders that cannot be created are one message instead of a Hydra traceback."""

import functools
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from imgclf.errors import user_errors_reported
from imgclf.overrides import check_overrides, home_expanded
from imgclf.resolvers import register_resolvers
from imgclf.run_folder import check_run_dir_overrides


def config_dir() -> str:
    """The configs: the package imgclf.conf, which a wheel ships inside imgclf and an editable
    install maps to the checkout's conf/; that conf/ itself where src/ is only on the path,
    not installed (scripts/gpu_checks.sh on a machine without the project's environment)."""
    try:
        return str(resources.files("imgclf.conf"))
    except ModuleNotFoundError:
        return str(Path(__file__).resolve().parents[2] / "conf")


CONFIG_DIR = config_dir()

# Arguments that rerun a saved run (`resume=<run folder>`), or None for a new run.
SavedRunArguments = Callable[[list[str]], list[str] | None]


def command_line_app(
    config_name: str, saved_run_arguments: SavedRunArguments | None = None
) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Decorates an app's `hydra.main` entry point (config `config_name`). A command line
    that `saved_run_arguments` turns into a saved run's is not checked again: its config
    was checked when the run started."""

    def decorate(hydra_main: Callable[[], Any]) -> Callable[[], Any]:
        @functools.wraps(hydra_main)
        def main() -> Any:
            register_resolvers()
            arguments = home_expanded(sys.argv[1:])
            with user_errors_reported():
                check_run_dir_overrides(arguments)
                saved = saved_run_arguments(arguments) if saved_run_arguments else None
                if saved is None:
                    check_overrides(arguments, CONFIG_DIR, config_name)
            sys.argv[1:] = arguments if saved is None else saved
            return hydra_main()

        return main

    return decorate
