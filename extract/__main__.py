"""``python -m extract``: the same command line as ``kalshi-extract``."""

from extract.cli import main

if __name__ == "__main__":
    main()
