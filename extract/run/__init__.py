"""Executing a plan: ``extract candles``, its windows, their pages, leases, progress, summary.

May import every other room of extract; nothing imports ``run`` but the command line.
"""
