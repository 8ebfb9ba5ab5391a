"""Pusher's naming rules and fixed limits: channel names, event names, user ids, socket ids.

They are the same on every Pusher cluster, unlike the size limits that are settings
(``mesg_pusher.limits``). The tasks check their inputs against them and the receiving side
its variables, so they live below both; a rule says what is wrong with a value, and its
caller says who gave it (``input 'channel'``, ``variable PUSHER_SUBSCRIBE``).
"""

from __future__ import annotations

import re

from mesg_pusher.limits import CHANNEL_NAME, Limits

# What a channel name may hold; user ids take the same alphabet.
CHANNEL_CHARACTERS = re.compile(r"[A-Za-z0-9_\-=@,.;]+")
# A socket id as Pusher hands them to clients: digits.digits.
SOCKET_ID = re.compile(r"[0-9]+\.[0-9]+")
# Channels one event may go to.
MAX_CHANNELS = 100
MAX_EVENT_NAME = 200
# A user id of user authentication and of the users API (terminate_connections).
MAX_USER_ID = 200
# Pusher's presence limits: "maximum 128 characters for user id", "1KB limit for user object".
MAX_PRESENCE_USER_ID = 128
MAX_USER_INFO_BYTES = 1_024
# The user data of a sign-in (pusher:signin).
MAX_USER_DATA_BYTES = 10_240


def channel_fault(name: str, limits: Limits) -> str | None:
    """What Pusher would refuse in a non-empty channel name, within ``limits``' length, or None.

    Written as the end of a sentence whose subject says where the name came from:
    ``f"input 'channel' {fault}"``.
    """
    if len(name) > limits.max_channel_name_length:
        return f"is {len(name)} characters long; {limits.in_force(CHANNEL_NAME)}"
    if not CHANNEL_CHARACTERS.fullmatch(name):
        bad = sorted({c for c in name if not CHANNEL_CHARACTERS.fullmatch(c)})
        return (
            f"{name[:80]!r} contains {''.join(bad)!r}; channel names may only "
            "contain A-Z a-z 0-9 and _ - = @ , . ;"
        )
    return None
