"""Keep SAS signatures out of the logs of the HTTP libraries beneath the adapters.

azure-core's HTTP logging policy already hides query values, but urllib3 logs every request line
at DEBUG (``"GET /md-x/c/abcd?sv=...&sig=... HTTP/1.1" 206``) and connection errors quote the full
URL. :func:`install_log_redaction` wraps the process's log-record factory once: every record of
the ``urllib3``, ``requests`` and ``azure`` loggers is formatted and passed through
:func:`shared.core.errors.redact` (signatures, account keys, passwords) before any handler sees it.
The adapters that put a SAS on the wire (``AzureClients``, ``PageBlobReader``) call it; it is
idempotent, chains to the factory installed before it, and leaves every other logger alone.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from shared.core.errors import redact

__all__ = ["install_log_redaction"]

_NAMESPACES = ("urllib3", "requests", "azure")
_lock = threading.Lock()
_installed = False


def install_log_redaction() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if record.name.startswith(_NAMESPACES):
                _scrub(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: leave it for the handler to report
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = redact(text)
