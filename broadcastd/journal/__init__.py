"""What happened, kept: the SQLite journal, its schema, the audit hash chain, coverage reports."""

from broadcastd.journal.reports import Report, build_report
from broadcastd.journal.store import Journal

__all__ = ["Journal", "Report", "build_report"]
