"""The extract stage: Kalshi API → raw page archive (and the event/market tables).

``events`` syncs ``kalshi_event``/``kalshi_market`` for a series; ``candles`` pages every
selected event window through the event-candlesticks route and archives each raw page,
writing the window's manifest last. Nothing here parses candle values: that is load's job.

Programmatic use (tests, notebooks)::

    from extract.config import ExtractConfig
    from extract.events import sync_events
    from extract.candles import run_candles

    cfg = ExtractConfig(db_url=..., archive_dir=..., api_base=sim.base_url, series="KXHIGHNY")
    await sync_events(cfg)
    summary = await run_candles(cfg)      # summary.failed == 0 when every window is done
"""
