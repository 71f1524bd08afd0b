"""The one exception type that reaches users as a single line."""

from typing import Any


class HscError(Exception):
    """A problem the user can fix: bad input, missing data, a wrong option.

    The message is one line that names the file (and line or key) and what to do.
    The CLI prints it without a traceback and exits with status 2.
    """


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none: for quoting
    a library's multi-line error inside a one-line :class:`HscError`."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def validation_error(exc: Any, source: str, prefix: str = "") -> HscError:
    """A pydantic ``ValidationError`` as one line naming its first bad key (``prefix`` + its path)."""
    err = exc.errors()[0]
    key = ".".join(str(part) for part in err["loc"])
    return HscError(f"{source}: key '{prefix}{key}': {err['msg']} (got {err.get('input')!r})")
