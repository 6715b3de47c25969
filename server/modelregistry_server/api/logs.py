"""Process logging: ``--log-format text|json``, ``--log-level`` and ``--log-sql``.

JSON: one object per line with the keys ``time`` (UTC, RFC 3339 with milliseconds),
``level``, ``logger``, ``message``; access lines (``api/access_log.py``) add their fields as
keys; a logged exception adds ``exception`` (its traceback). Keys are never renamed.

peewee logs every SQL statement with its parameters at DEBUG on logger ``peewee``; parameters
can be secrets (hashed keys, sealed webhook secrets, page-token secrets), so its DEBUG records are
dropped unless ``--log-sql`` is given, whatever level the root or ``peewee`` logger has.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("text", "json")
SQL_LOGGER = "peewee"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            line.update(access)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _no_sql(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


def configure_logging(
    level: str = "INFO",
    fmt: str = "text",
    log_sql: bool = False,
    stream: TextIO | None = None,
    *,
    force: bool = False,
) -> None:
    """Log to ``stream`` (stderr) in ``fmt`` at ``level``. As ``logging.basicConfig``: if the
    root logger has handlers already (an embedding application, pytest) they are kept and
    only the SQL switch applies, unless ``force`` replaces them."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    if force or not root.handlers:
        handler = logging.StreamHandler(stream or sys.stderr)
        formatter = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
        handler.setFormatter(formatter)
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(handler)
        root.setLevel(level.upper())
    sql = logging.getLogger(SQL_LOGGER)
    sql.removeFilter(_no_sql)
    if log_sql:
        sql.setLevel(logging.DEBUG)
    else:
        sql.setLevel(logging.INFO)  # no DEBUG records made at all …
        sql.addFilter(_no_sql)  # … and none let through if someone lowers the level
