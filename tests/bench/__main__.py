"""``python -m tests.bench`` (what ``make bench`` runs)."""

from tests.bench.cli import main

raise SystemExit(main())
