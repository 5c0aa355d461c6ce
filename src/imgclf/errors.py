"""Errors a user can fix, and how they are reported: one message, no traceback, non-zero exit."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# The exit status of a run stopped by a user error; Hydra uses 1 for its own config errors.
USER_ERROR_EXIT_CODE = 2


class UserError(Exception):
    """A problem with the user's input (config, data, paths) that they can fix."""


class DataNotFoundError(UserError):
    """A dataset is not on disk and could not be downloaded."""


class CorruptDataError(UserError):
    """A data file exists but cannot be what it claims to be."""


def find_user_error(error: BaseException) -> UserError | None:
    """The UserError behind `error`, looking through wrappers (Hydra's instantiate, Lightning)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def user_errors_reported() -> Iterator[None]:
    """Turn a UserError into a one-message exit; everything else keeps its traceback.

    `HYDRA_FULL_ERROR=1` shows the traceback of user errors too.
    """
    try:
        yield
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"imgclf: error: {user_error}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT_CODE)
