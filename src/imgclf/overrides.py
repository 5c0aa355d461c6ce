"""Typos on the command line, caught before Hydra runs: an unknown option of a config group
(`model=deepcnn`) or an unknown key (`optimizer.lrr=0.1`) is one message that names the
closest existing ones. Hydra's own messages list no close names, and for a mistyped key they
suggest appending it (`+optimizer.lrr`), which would train without the intended change."""

import difflib
import os
import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from imgclf.errors import UserError


def override(key: str, value: object) -> str:
    """`key=value` as Hydra reads back exactly `value`: a string (a path with spaces, `=`,
    commas, quotes, `${`, non-ASCII letters) quoted and escaped, so that nothing in it is
    read as override syntax or an interpolation; None as null."""
    if value is None:
        return f"{key}=null"
    text = str(value)
    # In a quoted value, backslashes before a quote (or at the end) are doubled, the quotes
    # and `${` escaped: Hydra then gives the string back as it was.
    text = re.sub(r"(\\+)(?=['$]|$)", lambda match: match.group(1) * 2, text)
    text = text.replace("'", "\\'").replace("${", "\\${")
    return f"{key}='{text}'"


def home_expanded(arguments: list[str]) -> list[str]:
    """`key=~/photos` as `key=/home/me/photos`. The shell expands `~` only in assignments to
    shell names, never after `data.data_dir=`, and Hydra's grammar refuses it unquoted."""
    expanded = []
    for argument in arguments:
        key, _, value = argument.partition("=")
        if value == "~" or value.startswith("~/"):
            argument = override(key, os.path.expanduser(value))
        expanded.append(argument)
    return expanded


def plain_overrides(arguments: list[str]) -> list[tuple[str, str]]:
    """(key, value) of the `key=value` arguments that change what exists: not flags, not
    additions or deletions (`+key`, `++key`, `~key`), not Hydra's own settings or packages."""
    pairs = []
    for argument in arguments:
        if argument.startswith(("-", "+", "~")) or "=" not in argument:
            continue
        key, value = argument.split("=", 1)
        if key.startswith("hydra") or "@" in key:
            continue
        pairs.append((key, value))
    return pairs


def is_search(value: str) -> bool:
    """A sweeper's search or Hydra's sweep syntax: `interval(0, 1)`, `choice(a, b)`,
    `range(1, 4)`, `glob(*)`; checked by the sweeper, with its params."""
    return "(" in value


def swept_options(value: str) -> list[str] | None:
    """The options a group override names: one, or a comma-separated sweep; None for search
    syntax or a nested path (`model=common/classifier`), which Hydra checks itself."""
    if is_search(value) or any(mark in value for mark in "[]{}/"):
        return None
    return value.split(",")


def closest(name: str, known: list[str], prefix: str = "") -> str:
    matches = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"did you mean {prefix}{matches[0]}? " if matches else ""


def group_options(config_dir: Path, name: str) -> list[str] | None:
    """The options of the config group `name` (its YAML files), or None if it is no group."""
    if not (config_dir / name).is_dir():
        return None
    return sorted(path.stem for path in (config_dir / name).glob("*.yaml"))


def group_problems(config_dir: Path, pairs: list[tuple[str, str]]) -> list[str]:
    problems = []
    for group, value in pairs:
        known, options = group_options(config_dir, group), swept_options(value)
        if known is None or options is None:
            continue
        for option in options:
            if option not in known and option != "null":
                problems.append(
                    f"{group}={option}: no {group} option of that name; "
                    f"{closest(option, known, f'{group}=')}The options: {', '.join(known)}"
                )
    return problems


def key_problems(config: DictConfig, pairs: list[tuple[str, str]], config_dir: Path) -> list[str]:
    """The first missing part of each dotted key, with its siblings; a group the config
    leaves unchosen (eval's `data`) is named as one."""
    problems = []
    for key, value in pairs:
        node, path = config, []
        for name in key.split("."):
            if not isinstance(node, DictConfig):
                break  # a list, a value or null below: Hydra and the value checks judge it
            # By its keys: `name in node` is False for a mandatory value (`???`).
            known = [str(existing) for existing in node]
            options = None if path or name in known else group_options(config_dir, name)
            if options is not None:
                problems.append(
                    f"{key}={value}: no {name} is chosen here; choose one first, "
                    f"{name}=<{' | '.join(options)}>"
                )
                break
            if name not in known:
                where = ".".join(path) or "the config"
                prefix = f"{where}." if path else ""
                problems.append(
                    f"{key}={value}: {where} has no key {name}; "
                    f"{closest(name, known, prefix)}Its keys: {', '.join(known)} "
                    f"(to add a new key: +{key}={value})"
                )
                break
            path.append(name)
            # Without reading a value: a mandatory one (`???`) or an interpolation only
            # ends the walk, as a leaf does.
            node = OmegaConf.select(
                node, name, throw_on_missing=False, throw_on_resolution_failure=False
            )
    return problems


# Another primary config than the script's: its names are not ours to check.
OTHER_CONFIG_FLAGS = ("--config-path", "--config-name", "--config-dir", "-cp", "-cn", "-cd")


def check_overrides(arguments: list[str], config_dir: str, config_name: str) -> None:
    """Raise one UserError listing every mistyped group option and key in `arguments`.
    Keys are looked up in the config composed from the command line's group choices (the
    first of a sweep's), so that keys a chosen group brings count. What cannot be composed
    is left to Hydra, which reports it."""
    if any(argument.startswith(OTHER_CONFIG_FLAGS) for argument in arguments):
        return
    pairs = plain_overrides(arguments)
    directory = Path(config_dir)
    problems = group_problems(directory, pairs)
    if not problems:
        groups = [pair for pair in pairs if group_options(directory, pair[0]) is not None]
        # A sweep's first option: its other options bring the same keys or fail above.
        choices = [f"{key}={(swept_options(value) or [value])[0]}" for key, value in groups]
        # A sweeper's search (`interval(0, 1)`, `choice(...)`) is checked with its params.
        values = [pair for pair in pairs if pair not in groups and not is_search(pair[1])]
        try:
            with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
                config = compose(config_name, overrides=choices)
        except Exception:  # noqa: BLE001  Hydra reports it, in its words, when it runs
            return
        problems = key_problems(config, values, directory)
    if problems:
        raise UserError("unknown names on the command line:\n  " + "\n  ".join(problems))
