"""The candle routes, one module each, behind one small interface (:mod:`.base`).

May import ``extract.plan`` (caps, paging, windows), ``extract.config`` / ``extract.errors``
and ``schemas``.

``extract/run/candles.py`` is the orchestration: it leases a window, decides which markets
each route serves, and :mod:`extract.run.window_job` runs the ONE request loop, which asks
a route only these questions:

- **plan**: :meth:`~.base.CandleRoute.pager` gives a :class:`~.base.Pager` that names
  the next request under the route's cap (paged by the server's answer, like the event
  route, or planned in fixed chunks, like the per-market routes), and
  :meth:`~.base.CandleRoute.estimate` the requests it will take (the dry run);
- **check**: :meth:`~.base.CandleRoute.check` turns a body's bytes into a
  :class:`~.base.Page` through :func:`schemas.candle_pages.read_candle_page` (a
  structural break raises :class:`~extract.errors.BadPageError`: retried, never
  archived); the pager's ``decide`` says where the next request starts and refuses a
  page that does not advance (retried) or that covers another range than it claims
  (:class:`~extract.errors.PagingContractError`: the window fails);
- **archive**: :attr:`~.base.CandleRoute.kind` is the page kind of the envelope and
  :meth:`~.base.CandleRoute.file` the page's file in the window folder;
  :meth:`~.base.CandleRoute.matches` says whether an archived envelope answers a
  request (a rerun reuses it instead of fetching it again).

Values are checked against the contract in that same read, for every route alike (one
pattern over the page's text, or :func:`schemas.api.contract_problem` value by value);
the loop's page source (:class:`extract.run.window_pages.WindowPages`) refuses a page
whose ``Page.problem`` is set before it is archived.

A further route is a new module here implementing :class:`~.base.CandleRoute`; the
orchestration picks it for a set of markets and runs the same loop.
"""
