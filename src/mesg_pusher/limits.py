"""Pusher's size limits as settings: bytes of data per event, events per batch, channel-name length.

The defaults are what Pusher's multi-tenant clusters enforce (10 KB of data, 10 events per
``batch_events`` call, 164-character channel names). A dedicated Pusher cluster may allow
more data or larger batches, and the compatible servers accept more by default (soketi and
sockudo: 100 KB of data, 200-character channel names), so each limit can be raised, per
process (``PUSHER_MAX_*``) or per execution (a connection input), within bounds that keep one
execution's memory and request size small:

- data: at most 1 MiB, ten times the largest default of the compatible servers; an
  execution's inputs reach the service through the engine's 4 MB gRPC messages anyway;
- batch: at most 100 events, sockudo's largest default; also the coalescer's batch size;
- channel name: at most 200 characters, what soketi and sockudo accept and what the official
  SDK's own channel check (used for ``channel`` and ``users``) lets through.

Each value remembers where it was set, so a refusal says which limit was in force and how to
change it. Parsing lives in ``config`` with the other connection settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LimitSetting:
    """One configurable limit: its connection input, its variable, default, bounds and unit."""

    input: str
    variable: str
    default: int
    low: int
    high: int
    unit: str
    # Why the default is what it is, for refusals made at the default.
    default_is: str


DATA = LimitSetting(
    "maxDataBytes",
    "PUSHER_MAX_DATA_BYTES",
    10_240,
    1,
    1_048_576,
    "bytes",
    "Pusher's multi-tenant limit; a dedicated cluster or a compatible server may allow more",
)
BATCH = LimitSetting(
    "maxBatchSize",
    "PUSHER_MAX_BATCH_SIZE",
    10,
    1,
    100,
    "events",
    "Pusher's multi-tenant limit; a dedicated cluster or a compatible server may allow more",
)
CHANNEL_NAME = LimitSetting(
    "maxChannelNameLength",
    "PUSHER_MAX_CHANNEL_NAME_LENGTH",
    164,
    1,
    200,
    "characters",
    "Pusher's limit; soketi and sockudo accept 200",
)
SETTINGS = (DATA, BATCH, CHANNEL_NAME)

# Where a value came from: the default, a connection input or a variable.
DEFAULT, INPUT, VARIABLE = "default", "input", "variable"


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force for one execution (part of its ``PusherOptions``)."""

    max_data_bytes: int = DATA.default
    max_batch_size: int = BATCH.default
    max_channel_name_length: int = CHANNEL_NAME.default
    # DEFAULT, INPUT or VARIABLE per setting, in SETTINGS order. Left out of equality: two
    # executions with the same limits share one SDK client and coalescing lane.
    sources: tuple[str, str, str] = field(default=(DEFAULT, DEFAULT, DEFAULT), compare=False, repr=False)

    def value(self, setting: LimitSetting) -> int:
        """The value in force for ``setting``."""
        return (self.max_data_bytes, self.max_batch_size, self.max_channel_name_length)[
            SETTINGS.index(setting)
        ]

    def in_force(self, setting: LimitSetting) -> str:
        """``the limit is 10240 bytes (why, or who set it)``: the end of every refusal."""
        source = self.sources[SETTINGS.index(setting)]
        if source == INPUT:
            where = f"set by input {setting.input!r}"
        elif source == VARIABLE:
            where = f"set by variable {setting.variable}"
        else:
            where = f"{setting.default_is}: set input {setting.input!r} or {setting.variable}"
        return f"the limit is {self.value(setting)} {setting.unit} ({where})"


DEFAULT_LIMITS = Limits()
