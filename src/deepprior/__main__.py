"""The ``deepprior`` command's entry point (also ``python -m deepprior``).

It imports the command inside a ``try``: loading PyTorch takes a second or two, and Ctrl-C in
that time ends the command with one line, as it does later, not with a traceback.
"""

from __future__ import annotations

import sys

from .errors import EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> None:
    """Load the command and run it; Ctrl-C while loading exits 130 with one line."""
    try:
        from .cli import main as run_command
    except KeyboardInterrupt:
        sys.stderr.write("deepprior: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    run_command(argv)


if __name__ == "__main__":
    main()
