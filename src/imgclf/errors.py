"""Errors a user can fix, and how they are reported: one message, no traceback, non-zero exit."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf.errors import MissingMandatoryValue

# The exit status of a run stopped by a user error; Hydra uses 1 for its own config errors.
USER_ERROR_EXIT_CODE = 2


class UserError(Exception):
    """A problem with the user's input (config, data, paths) that they can fix."""


class DataNotFoundError(UserError):
    """A dataset is not on disk and could not be downloaded."""


class CorruptDataError(UserError):
    """A data file exists but cannot be what it claims to be."""


def user_error_message(error: BaseException) -> str | None:
    """What to tell the user, if a UserError or a required config value left unset (`???`) is
    behind `error`; looks through wrappers such as Hydra's instantiate and Lightning."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return str(current)
        if isinstance(current, MissingMandatoryValue):
            key = current.full_key
            return f"{key} must be set: add {key}=<value> to the command line"
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def error_message(error: BaseException) -> str:
    """The user's message behind `error`, else its type and text: what error.json keeps."""
    return user_error_message(error) or f"{type(error).__name__}: {error}"


@contextmanager
def user_errors_reported() -> Iterator[None]:
    """Turn a UserError into a one-message exit; everything else keeps its traceback.

    `HYDRA_FULL_ERROR=1` shows the traceback of user errors too.
    """
    try:
        yield
    except Exception as error:
        message = user_error_message(error)
        if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"imgclf: error: {message}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT_CODE)
