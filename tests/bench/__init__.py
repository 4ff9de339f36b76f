"""``make bench``: the project measured against its references, side by side, in one run.

Every figure that matters is a RATIO of two things measured in the same run on the same
machine, because a shared machine's absolute timings drift from one minute to the next:

- load: the loader, end to end from the gzipped archive into MariaDB, against a raw
  ``LOAD DATA LOCAL INFILE`` of the same rows (the database's own ceiling) and against a
  plain batched ``executemany`` upsert (what most scripts do); then the same load again
  with every row already present;
- extract: requests/s achieved against a simulator that enforces a Kalshi-shaped token
  bucket, as a fraction of that budget, and the 429s it answered;
- memory: peak RSS of each stage's command, as a fresh child process, for a short and a
  long range of one series;
- normalization alone: candles/s from gzipped pages to the Polars frame.

Results go to ``data/bench/results.{md,json}`` (machine, versions, date, every metric and
each target's PASS/MISS); see the README's "Benchmarks" section. ``--quick`` runs the same steps on
smaller sizes; the test suite smoke-tests it on tiny ones.
"""
