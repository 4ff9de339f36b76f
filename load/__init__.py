"""The load stage: replay the raw archive into the database, with no API call at all.

Rooms, by what happens there: ``run`` (``load run``: discover → read → write with the
checkpoint SUCCESS in the same transaction; ``run.loader`` is the stage's main module),
``normalize`` (pure Polars: pages into candles, the missing-minute statistics), ``access``
(``query``, ``asof``, ``export``, ``grid``) and ``report`` (``status``, ``inspect``,
``verify``, ``coverage``, ``plot``). ``cli`` builds a frozen
:class:`~load.config.LoadConfig` from the command line; ``config`` and ``errors`` are the
stage's own.
"""

from schemas import __version__ as __version__
