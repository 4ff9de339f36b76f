"""Talking HTTP to Kalshi: the client (session, signing, error bodies), retries, the token bucket.

May import ``schemas`` and ``extract.config`` / ``extract.errors``; nothing else of extract.
"""
