"""``python -m deepprior``: the same as the ``deepprior`` command."""

from .cli import main

main()
