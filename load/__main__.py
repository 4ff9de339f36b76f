"""``python -m load``."""

from load.cli import main

if __name__ == "__main__":
    main()
