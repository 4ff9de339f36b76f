"""Contracts shared by the extract and load stages.

Nothing here talks to the network. ``tables`` defines the database, ``archive`` the
on-disk format that extract writes and load reads, ``api`` the shape of Kalshi's pages,
``tickers`` the validation every ticker passes before it reaches a path, a URL or SQL,
and ``errors`` the one exception root.
"""
