"""Contracts shared by the extract and load stages.

Nothing here talks to the network. ``tables`` defines the database, ``archive`` the
on-disk format that extract writes and load reads, ``api`` the shape of Kalshi's pages,
``tickers`` the validation every ticker passes before it reaches a path, a URL or SQL,
and ``errors`` the one exception root.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kalshi-candles")
    """The installed distribution's version (pyproject.toml), shown by ``--version`` and
    sent in the User-Agent."""
except PackageNotFoundError:  # a checkout run without ``pip install``
    __version__ = "0+unknown"
