"""What a backfill holds and how it went: ``status``, ``inspect``, ``verify``, ``coverage``.

Read-only. May import ``load.access``, ``load.normalize`` and ``schemas``.
"""
