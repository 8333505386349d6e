"""compat entry stdlib_logging.no_caller_lookup: stock logging looks up every
record's caller (file, line, function); with the entry it does not."""

from __future__ import annotations

import logging
import os

import pytest

from conveyor.common.compat.stdlib_logging import skip_caller_lookup

# What the logging module sets at import (the caller lookup on).
STOCK_SRCFILE = os.path.normcase(logging.addLevelName.__code__.co_filename)


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _record() -> logging.LogRecord:
    logger = logging.getLogger("compat-test")
    keep = Keep()
    logger.addHandler(keep)
    logger.propagate = False
    try:
        logger.warning("hello")
    finally:
        logger.removeHandler(keep)
    return keep.records[0]


def test_caller_lookup_stock_then_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging, "_srcfile", STOCK_SRCFILE)
    stock = _record()
    assert stock.funcName == "_record" and stock.lineno > 0
    assert skip_caller_lookup()
    skipped = _record()
    assert skipped.funcName == "(unknown function)" and skipped.lineno == 0
