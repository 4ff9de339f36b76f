"""Pure: archived pages into the candle frame, each field's rules, the missing-minute statistics.

No I/O but the bytes handed in. May import ``schemas`` and ``load.errors``.
"""
