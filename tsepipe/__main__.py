"""``python -m tsepipe``: the same as the ``tsepipe`` command."""

from tsepipe.cli import main

main()
