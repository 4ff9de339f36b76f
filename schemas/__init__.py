"""Contracts shared by the extract and load stages.

Nothing here talks to the network. ``tables`` defines the database, ``archive`` the
on-disk format that extract writes and load reads, ``api`` the shape of Kalshi's pages,
``tickers`` the validation every ticker passes before it reaches a path, a URL or SQL,
and ``errors`` the one exception root.
"""

__version__ = "0.1.0"
"""The distribution's version (pyproject.toml reads it from here), shown by ``--version``
and sent in the User-Agent. A literal, not ``importlib.metadata.version()``: importing
importlib.metadata costs ~45 ms, a fifth of a command's start-up."""
