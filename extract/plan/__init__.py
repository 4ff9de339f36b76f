"""Which windows, which requests, at what cost: window math, tiers, caps, paging, auto's choice.

Pure (no HTTP, no clock) but for ``selection``, which reads the chosen events from the
database. May import ``schemas``, ``extract.config`` / ``extract.errors`` and each other.
"""
