"""Hashes in text: base58 (Bitcoin alphabet) of the 32 raw bytes, as the engine prints them.

``MESG_TOKEN``, the READY line and the engine's messages name hashes this way. The codec is the
``base58`` package's.
"""

from __future__ import annotations

import base58

__all__ = ["b58", "from_b58"]


def b58(value: bytes) -> str:
    return base58.b58encode(value).decode("ascii")


def from_b58(text: str) -> bytes:
    """The raw bytes; ``ValueError`` naming the first character outside the alphabet."""
    return base58.b58decode(text)
