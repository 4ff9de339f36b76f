"""Configuration objects that can be printed without leaking secrets.

A config's ``repr`` ends up in logs, tracebacks and bug reports. The dataclasses of both
stages use :func:`safe_repr` as their ``__repr__``: a field marked :data:`SECRET` is shown
as ``'***'`` (key ids, key file paths), a field marked :data:`URL` with its password
masked (``mysql+pymysql://user:***@host/db``), every other field as dataclasses would.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

#: ``field(metadata=SECRET)``: never shown, not even its length.
SECRET = {"redact": "secret"}
#: ``field(metadata=URL)``: shown with any password replaced by ``***``.
URL = {"redact": "url"}


def safe_repr(obj: Any) -> str:
    """The dataclass repr of ``obj`` with its SECRET and URL fields redacted."""
    parts = []
    for f in dataclasses.fields(obj):
        if not f.repr:
            continue
        value = getattr(obj, f.name)
        how = f.metadata.get("redact")
        if how == "secret":
            shown = "'***'"
        elif how == "url" and value is not None:
            shown = repr(redact_url(str(value)))
        else:
            shown = repr(value)
        parts.append(f"{f.name}={shown}")
    return f"{type(obj).__qualname__}({', '.join(parts)})"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for logs and errors)."""
    from sqlalchemy.engine import make_url  # a rare call: keep --help light
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
