"""``python -m difmachine``: the command line, as the ``difmachine`` script."""

from .cli import main

main()
