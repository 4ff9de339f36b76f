"""What a backfill holds and how it went: ``status``, ``inspect``, ``verify``, ``coverage``,
and one market's book as a picture: ``plot``.

Read-only. May import ``load.access``, ``load.normalize`` and ``schemas``.
"""
