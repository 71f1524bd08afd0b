"""The one exception type that reaches users as a single line."""


class HscError(Exception):
    """A problem the user can fix: bad input, missing data, a wrong option.

    The message is one line that names the file (and line or key) and what to do.
    The CLI prints it without a traceback and exits with status 2.
    """
