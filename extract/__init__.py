"""The extract stage: Kalshi API → raw page archive (and the event/market tables).

``events`` syncs ``kalshi_event``/``kalshi_market`` for a series; ``candles`` pages every
selected event window through the event-candlesticks route and archives each raw page,
writing the window's manifest last. Nothing here parses candle values: that is load's job.

Programmatic use (notebooks, other pipelines); ``tests/test_cli_conventions.py`` runs this
very example against the simulator, so it cannot drift from the API::

    import asyncio

    from extract.candles import run_candles
    from extract.config import ApiConfig, ExtractConfig
    from extract.events import sync_events

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
