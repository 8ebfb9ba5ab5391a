"""When a call to Pusher is tried again, and after how long: the one rule every retry follows.

Whether a call may be tried again is the caller's to say (the transport: nothing was sent, or
a read, or an answer saying the request was not taken; the coalescer: a batch refused whole).
How long to wait is decided here, the same for all of them:

- the backoff (``backoff.backoff``: 50 ms, doubling, at most 1 s, jittered so that many
  waiting calls do not come back together);
- or what the server asked for in ``Retry-After``, when it is longer: a server that says when
  to come back knows better than our guess, and one that says "now" is not hammered;
- and only if the pause, plus a little time for the call itself, fits before the execution's
  deadline. If not, the call fails at once with the answer it got, and says when Pusher
  wanted it back: an execution never outlives its timeout waiting for a retry.

429 (Too Many Requests) and 503 (Service Unavailable) are the answers that say the request was
not taken (``NOT_TAKEN``): retrying them cannot publish twice.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import re
import time

from mesg_pusher.backoff import backoff

NOT_TAKEN = frozenset({429, 503})
# The first pause and the longest one: a Pusher call's timeout is seconds (PUSHER_TIMEOUT,
# 5 by default), so retries come quickly and several fit in it.
FIRST = 0.05
CAP = 1.0
# Seconds asked beyond this are taken as this (about 31 years): far past any timeout, and
# still a date that can be written.
MAX_ASKED = 1e9

_SECONDS = re.compile(rb"\s*(\d{1,30})(\.\d{1,9})?\s*")


def retry_after(value: bytes | None, now: float | None = None) -> float | None:
    """The seconds from now that a ``Retry-After`` value asks to wait; ``None`` if absent or
    not understood (then the backoff decides).

    Two forms (RFC 9110): a number of seconds, and an HTTP-date. A decimal fraction of seconds
    is accepted too (compatible servers send ``0.5``). A date already past asks for no wait.
    ``now`` is the wall clock the date is compared with (``time.time()`` by default).
    """
    if value is None:  # (http1 keeps at most 64 bytes of it)
        return None
    if match := _SECONDS.fullmatch(value):
        return min(float(match.group(1) + (match.group(2) or b"")), MAX_ASKED)
    try:
        date = email.utils.parsedate_to_datetime(value.decode("ascii").strip())
    except (ValueError, TypeError, UnicodeDecodeError, IndexError, OverflowError):
        return None
    if date.tzinfo is None:  # "-0000": UTC, the only zone an HTTP-date may be in
        date = date.replace(tzinfo=datetime.UTC)
    wall = time.time() if now is None else now
    return min(max(date.timestamp() - wall, 0.0), MAX_ASKED)


def pause(attempt: int, asked: float | None = None) -> float:
    """How long to wait before try number ``attempt + 1``: the backoff, or what the server
    asked for (``retry_after``) when that is longer."""
    wait = backoff(attempt, FIRST, CAP)
    return wait if asked is None else max(asked, wait)


def fits(deadline: float, wait: float, now: float) -> bool:
    """Whether ``wait`` and a little time for the call itself fit before ``deadline``."""
    return deadline - now > wait + FIRST


async def wait_within(deadline: float, wait: float) -> bool:
    """Sleep ``wait`` seconds if that leaves time to try again before ``deadline`` (event-loop
    time); ``False`` at once if not."""
    if not fits(deadline, wait, asyncio.get_running_loop().time()):
        return False
    await asyncio.sleep(wait)
    return True


def come_back(asked: float, now: float | None = None) -> str:
    """When the server asked to be called again, for an error: ``in 30 s (at 2026-05-01T12:00:30Z)``."""
    wall = time.time() if now is None else now
    at = datetime.datetime.fromtimestamp(wall + asked, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"in {asked:g} s (at {at})"


def not_retried(tries: int, asked: float | None, left: float, timeout: float) -> str:
    """Why an answer that could have been retried ends the call, for its error: the time ran
    out after ``tries`` answers like it, or Pusher asked to come back after the deadline."""
    tried = f"tried {'once' if tries == 1 else f'{tries} times'} within {timeout:g} s"
    if asked is not None and not fits(left, asked, 0.0):
        came = (
            f"Pusher asked to come back {come_back(asked)}, after this call's time "
            f"({max(left, 0.0):.1f} s left of {timeout:g} s), so it was not tried again"
        )
        return came if tries == 1 else f"{came} ({tried})"
    return tried
