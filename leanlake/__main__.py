"""``python -m leanlake``: the ``leanlake`` command, where the console script is not on PATH."""

from leanlake.cli import main

if __name__ == "__main__":
    main()
