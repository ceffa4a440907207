"""The one exception type that means "the user gave us something wrong".

The command line turns a ``UserError`` into a single line on stderr and exit code 2; anything
else is a bug and exits 1.
"""


class UserError(Exception):
    """Bad input: a recipe key, a value, a path or a file. The message names which."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (libraries' messages run to several), or its type."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
