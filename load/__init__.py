"""The load stage: replay the raw archive into the database, with no API call at all.

``loader`` is the stage's main module (discover → read → normalize → stats → write with
the checkpoint SUCCESS in the same transaction); ``normalize`` and ``stats`` are pure
Polars; ``writer`` is the staged bulk upsert per dialect; ``cli`` builds a frozen
:class:`~load.config.LoadConfig` from the command line.
"""

from schemas import __version__ as __version__
