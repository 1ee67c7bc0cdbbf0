"""Filing a call's work order, with its failure path: never lost, never silently dropped.

The ticket sink (``ivr.wiring.ServiceSink``) retries SQL and spools the draft to disk; if
even that fails, the filer marks the call ``unfiled`` so the session keeps its journal
open for orphan recovery, logs it at CRITICAL and lets the call go on.
"""

from __future__ import annotations

import logging
from typing import Protocol

from hotline.draft import TicketDraft
from ivr.journal import CallJournal, CallRecord, JournalEvent

log = logging.getLogger(__name__)


class WorkOrderHeld(Exception):
    """Neither SQL nor the spool took the work order; the sink holds it in memory and
    files it itself when one comes back (the journal stays open meanwhile)."""


class TicketSink(Protocol):
    async def intake(self, draft: TicketDraft, skill: str) -> str: ...


class TicketFiler:
    def __init__(self, sink: TicketSink | None, journal: CallJournal, record: CallRecord) -> None:
        self.sink = sink
        self.journal = journal
        self.record = record
        self.number = ""  # the work order's number once filed
        self.spooled = False  # it waits in the durable spool (SQL was away): no number yet
        self.unfiled = False  # not even spooled: the journal keeps it for orphan recovery

    async def file(self, draft: TicketDraft, skill: str) -> str:
        """The work order's number; "" when it is spooled, held or kept for recovery."""
        if self.sink is None:
            log.error("no ticket store configured: ticket for %s kept in the journal only",
                      self.record.call_id)  # fmt: skip
            return ""
        try:
            number = await self.sink.intake(draft, skill)
        except Exception as exc:
            # Neither SQL nor the spool took it: the journal stays open, so orphan
            # recovery files the work order from it later. Never lost with the call.
            self.unfiled = True
            held = isinstance(exc, WorkOrderHeld)  # the sink files it itself later
            self.spooled = held
            log.critical("call %s: work order neither filed nor spooled (%s); kept in the "
                         "call journal for recovery", self.record.call_id, exc,
                         exc_info=not held)  # fmt: skip
            return ""
        self.record.outcome = "ticket"
        if not number:  # kept in the durable spool (SQL away): filed when it returns
            self.spooled = True
            self.journal.write(JournalEvent.TICKET, {"number": "", "spooled": True})
            return ""
        self.number = self.record.ticket = number
        self.journal.write(JournalEvent.TICKET, {"number": number})
        return number
