"""The extract stage: Kalshi API → raw page archive (and the event/market tables).

``events`` syncs ``kalshi_event``/``kalshi_market`` for a series; ``candles`` pages every
selected event window through the candle routes and archives each raw page, writing the
window's manifest last. Nothing here parses candle values for load: that is load's job.

Rooms, by what happens there: ``api`` (HTTP: client, retries, token bucket), ``events``
(events and markets into the database), ``plan`` (pure: windows, tiers, caps, paging,
``auto``'s choice), ``routes`` (one module per candle route), ``run`` (executing a plan:
``run.candles`` is the stage's main module) and ``check`` (``check-api``). ``cli``,
``config`` and ``errors`` are the stage's own.

Programmatic use (notebooks, other pipelines); ``tests/test_cli_conventions.py`` runs this
very example against the simulator, so it cannot drift from the API::

    import asyncio

    from extract.run.candles import run_candles
    from extract.config import ApiConfig, ExtractConfig
    from extract.events.sync import sync_events

    config = ExtractConfig(
        series="KXHIGHNY",
        db_url="sqlite:///data/kalshi.db",
        archive_dir="data/raw",
        api=ApiConfig(base_url="https://api.elections.kalshi.com/trade-api/v2"),
    )
    asyncio.run(sync_events(config))  # events and markets first: candles reads them
    summary = asyncio.run(run_candles(config))
    assert summary.ok, summary.failures  # every selected window is archived
"""

from schemas import __version__ as __version__
