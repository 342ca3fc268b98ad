"""`jitsudo-bot audit`: print the trail, verify the hash chain, export it.

Called by bot.cli. Reads the chain through bot.auditlog (which says what is
hashed and how writers are serialized) and judges it here.

How verify finds the first break, walking the events in seq order with the
position it expects next (from 1) and the hash the next event must link to:

- a gap in seq: the missing events were removed;
- an event whose hash does not match its fields: it was changed. Unless its
  hash matches at the position before (an event was inserted ahead of it and
  the rest renumbered up) or after (one was removed and the rest renumbered
  down), or the next event is sealed at this position (this one is an
  insertion with a made-up hash);
- an event whose own hash holds but whose prev_hash is not the previous
  event's hash: if it links to the event two back, the previous one was
  inserted; otherwise the previous one was changed and its hash recomputed;
- at the end, against the head row: a head further on means the last events
  were removed, a different hash that the last one was changed and rehashed,
  and events past the head were inserted.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TextIO

from sqlalchemy.engine import Engine

from bot import auditlog
from bot.auditlog import GENESIS, digest, utc_text
from bot.database import open_store
from bot.domain import InvalidInput, parse_request_id
from bot.store import AuditEvent, Store

Kind = Literal["changed", "recomputed", "removed", "inserted"]
EXPORT_FIELDS = ("seq", "at", "actor", "action", "request_id", "details", "prev_hash", "hash")
FORMATS = ("jsonl", "csv")
TIME_FORMS = (
    "use ISO 8601: a date (2026-11-27, midnight UTC), a UTC time (2026-11-27T12:00:00Z) "
    "or one with an offset (2026-11-27T14:00:00+02:00); without an offset it is UTC"
)


@dataclass(frozen=True)
class Break:
    """The first place where the stored events are not the chain that was written."""

    kind: Kind
    seq: int | None  # None: the head row, not an event
    message: str


@dataclass(frozen=True)
class Verdict:
    events: int
    last_hash: str
    broken: Break | None

    @property
    def line(self) -> str:
        if self.broken is not None:
            where = "" if self.broken.seq is None else f" at seq {self.broken.seq}"
            return f"audit chain broken{where}{self.broken.message}"
        if self.events == 0:
            return "audit chain intact: no events yet"
        count = f"{self.events} event{'s' if self.events > 1 else ''}, seq 1-{self.events}"
        return f"audit chain intact: {count}, last hash {self.last_hash}"


def _about(event: AuditEvent | None) -> str:
    if event is None:
        return ""
    return f" ({event.request_id}, {event.action} by {event.actor} at {utc_text(event.at)})"


def _removed(first: int, last: int, *, renumbered: bool = False) -> Break:
    what = f"event seq {first} is" if first == last else f"events seq {first}-{last} are"
    how = "removed; the events after it were renumbered" if renumbered else "removed"
    return Break("removed", first, f": {what} missing ({how})")


def _inserted(position: int, event: AuditEvent | None) -> Break:
    return Break(
        "inserted", position, f"{_about(event)}: event at position {position} was inserted"
    )


def _changed(event: AuditEvent) -> Break:
    return Break("changed", event.seq, f"{_about(event)}: the event was changed")


def _recomputed(event: AuditEvent, witness: str) -> Break:
    message = f"{_about(event)}: the event was changed and its hash recomputed ({witness})"
    return Break("recomputed", event.seq, message)


class _Walk:
    """The state of a walk along the chain: what comes next and what it must link to."""

    def __init__(self) -> None:
        self.expected = 1
        self.previous: AuditEvent | None = None
        self.link = GENESIS  # the hash the next event's prev_hash must equal
        self.link_before: str | None = None  # the one before that (None at seq 1)

    def step(self, event: AuditEvent, following: AuditEvent | None) -> Break | None:
        if event.seq < self.expected:
            return _inserted(event.seq, event)
        if event.seq > self.expected:
            return _removed(self.expected, event.seq - 1)
        if digest(event) != event.hash:
            return self._unsealed(event, following)
        if event.prev_hash != self.link:
            return self._unlinked(event)
        self.expected += 1
        self.previous, self.link_before, self.link = event, self.link, event.hash
        return None

    def _unsealed(self, event: AuditEvent, following: AuditEvent | None) -> Break:
        here = self.expected
        if here > 1 and digest(event, seq=here - 1) == event.hash:
            return _inserted(here - 1, self.previous)
        if digest(event, seq=here + 1) == event.hash:
            return _removed(here, here, renumbered=True)
        if (
            following is not None
            and following.seq == here + 1
            and following.prev_hash == self.link
            and digest(following, seq=here) == following.hash
        ):
            return _inserted(here, event)
        return _changed(event)

    def _unlinked(self, event: AuditEvent) -> Break:
        if self.previous is None:
            return _changed(event)  # seq 1 must link to GENESIS
        if event.prev_hash == self.link_before:
            return _inserted(self.previous.seq, self.previous)
        return _recomputed(self.previous, f"seq {event.seq} links to a different hash")

    def finish(self, head_seq: int, head_hash: str) -> Break | None:
        last = self.expected - 1
        if head_seq > last:
            return _removed(last + 1, head_seq)
        if head_hash != self.link:
            if self.previous is None:
                return Break(
                    "changed", None, ": the audit head names a hash, but there are no events"
                )
            return _recomputed(self.previous, "the audit head records a different hash")
        return None


def _with_next(events: Iterator[AuditEvent]) -> Iterator[tuple[AuditEvent, AuditEvent | None]]:
    """Each event with the one after it (None after the last): the walk looks one ahead."""
    current = next(events, None)
    while current is not None:
        following = next(events, None)
        yield current, following
        current = following


def verify(engine: Engine) -> Verdict:
    """Walk the whole chain and the head; the first break found, or none."""
    head = auditlog.head(engine)
    if head is None:
        missing = Break("removed", None, ": the audit_head row is missing (removed)")
        return Verdict(events=0, last_hash=GENESIS, broken=missing)
    walk = _Walk()
    for event, following in _with_next(auditlog.events(engine, up_to=head.seq)):
        broken = walk.step(event, following)
        if broken is not None:
            return Verdict(events=walk.expected - 1, last_hash=walk.link, broken=broken)
    broken = walk.finish(head.seq, head.hash)
    extra = auditlog.beyond_head(engine)
    if broken is None and extra:
        broken = _inserted(extra[0].seq, extra[0])
    return Verdict(events=walk.expected - 1, last_hash=walk.link, broken=broken)


def _record(event: AuditEvent) -> dict[str, object]:
    """One exported event: exactly the hashed fields (details as the stored text), and hash."""
    return {
        "seq": event.seq,
        "at": utc_text(event.at),
        "actor": event.actor,
        "action": event.action,
        "request_id": event.request_id,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def export(events: Iterable[AuditEvent], *, output: str, out: TextIO) -> int:
    """Write the events as JSON lines or CSV (with a header row); returns how many."""
    records: Iterator[dict[str, object]] = (_record(event) for event in events)
    count = 0
    if output == "csv":
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS)
        writer.writeheader()
        for record in records:
            writer.writerow(record)
            count += 1
        return count
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def print_trail(store: Store, request_id: str | None, *, out: TextIO) -> None:
    """The readable trail (`audit [REQUEST_ID]`): one JSON line per event, details parsed."""
    for event in store.audit_trail(request_id):
        line = {
            "at": event.at.isoformat(),
            "actor": event.actor,
            "action": event.action,
            "request": event.request_id,
            "details": json.loads(event.details),
        }
        out.write(json.dumps(line) + "\n")


def parse_time(text: str) -> datetime:
    """`--since`: ISO 8601 as Python reads it (date, date and time, Z or offset); UTC if naive."""
    try:
        value = datetime.fromisoformat(text.strip())
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # overflow: 0001-01-01T00:00+01:00 is before year 1
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; {TIME_FORMS}") from None


def parse_target(text: str) -> str:
    """`audit verify`, `audit export` or `audit REQUEST_ID` (any case); nothing else."""
    if text in ("verify", "export"):
        return text
    try:
        return parse_request_id(text)
    except InvalidInput:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither verify, export nor a request ID "
            "(IDs look like req_01J8KZ4Q2M3N5P6R7S8T9VWXYZ)"
        ) from None


def run(
    url: str,
    *,
    target: str | None,
    since: datetime | None,
    output: str | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """The `audit` command: 0 done (or chain intact), 1 chain broken, 2 bad options."""
    if target != "export" and (since is not None or output is not None):
        err.write(
            "jitsudo-bot audit: --since and --format are options of `audit export`, "
            "e.g. jitsudo-bot audit export --since 2026-11-01 --format csv\n"
        )
        return 2
    store = open_store(url)
    try:
        if target == "verify":
            verdict = verify(store.engine)
            out.write(verdict.line + "\n")
            return 0 if verdict.broken is None else 1
        if target == "export":
            events = auditlog.events(store.engine, since=since)
            export(events, output=output or "jsonl", out=out)
            return 0
        print_trail(store, target, out=out)
        return 0
    finally:
        store.engine.dispose()
