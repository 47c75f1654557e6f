"""A SUBACK or UNSUBACK that comes after the wait for it ended (a stalled link) is one log line,
never a traceback; other exceptions aiomqtt logs keep theirs."""

from __future__ import annotations

import logging

from broadcastd.transport import link


def _log_unexpected(logger: logging.Logger, error: Exception, msg: str) -> None:
    try:
        raise error
    except type(error):
        logger.exception(msg, 18)


def test_a_late_unsuback_is_one_line_without_a_traceback(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=link.__name__)
    logger = link._client_log
    _log_unexpected(logger, KeyError(18), 'Unexpected message ID "%d" in on_unsubscribe callback')
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert record.getMessage() == (
        'Unexpected message ID "18" in on_unsubscribe callback: it came after the wait for it ended'
    )
    assert "Traceback" not in caplog.text


def test_other_exceptions_keep_their_traceback(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=link.__name__)
    _log_unexpected(link._client_log, ValueError("broken"), "callback failed %d")
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "Traceback" in caplog.text
