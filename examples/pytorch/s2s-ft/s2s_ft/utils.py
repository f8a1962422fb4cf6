"""The error convention shared by the s2s-ft scripts."""

import sys
from collections.abc import Callable


class UsageError(ValueError):
    """A problem with the user's arguments or data: reported as one line, without a traceback."""


def run_cli(main: Callable[[], object]) -> None:
    """Entry point of the scripts here: a UsageError becomes `error: <message>` on stderr and exit code 2;
    anything else keeps its traceback (a bug for us to fix)."""
    try:
        main()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
