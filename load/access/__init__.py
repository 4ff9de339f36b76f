"""Reading candles back out: ``query``, ``asof``, ``export``, with the commands in ``cli``.

Read-only. May import ``load.normalize`` (the frame's schema) and ``schemas``.
"""
