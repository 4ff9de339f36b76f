"""Series, events and markets into the database: ``extract series`` / ``--category``
(``series``), ``extract events`` and the historical-tier listings.

May import ``schemas``, ``extract.api`` and ``extract.plan`` (tiers); never ``run``.
"""
