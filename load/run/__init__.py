"""``load run``: read complete windows from the archive, write them in staged batches under leases.

May import ``load.normalize``, ``load.config`` / ``load.errors`` and ``schemas``.
"""
