"""``check-api``: how the server answers what the spec leaves open, and the report it saves.

May import ``api``, ``plan`` and ``schemas``; ``run`` reads the saved report (``check.report``).
"""
