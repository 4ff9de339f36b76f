"""Reading candles back out: ``query``, ``asof``, ``export``, ``grid`` (the book at every
period) and ``markets.parquet``, with the commands in ``cli``.

Read-only. May import ``load.normalize`` (the frame's schema) and ``schemas``.
"""
