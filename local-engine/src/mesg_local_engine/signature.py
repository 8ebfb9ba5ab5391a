"""The G3 engine's request signatures (v0.21-v0.26), as its orchestrator makes and checks them.

The engine gives a runner's container ``MESG_REGISTER_SIGNATURE``: base64 of a secp256k1
signature, by the engine node's account key, over the Register request. Its ``Authorizer``
(server/grpc/orchestrator/authorizer.go) checks a Register this way:

1. the payload is the request as amino JSON with sorted keys: hashes are base58 strings and
   empty fields are left out, so ``{"envHash":"<b58>","serviceHash":"<b58>"}``;
2. the signature is 64 bytes ``r || s`` (tendermint's secp256k1 ``VerifyBytes``), over the
   sha256 of that payload, with ``s`` in the lower half of the order (a high ``s`` is refused);
3. it is accepted if one of the node's authorized public keys verifies it.

The curve arithmetic is the ``cryptography`` package's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from mesg_local_engine.hash_text import b58

__all__ = ["SignatureError", "SigningKey", "register_payload"]

# The order of secp256k1's group.
_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_ORDER = _ORDER // 2


class SignatureError(ValueError):
    """A signature the engine refuses; the message is the engine's."""


def register_payload(service_hash: bytes, env_hash: bytes) -> bytes:
    """The bytes a Register request's signature covers: its sorted amino JSON."""
    fields = {"serviceHash": service_hash, "envHash": env_hash}
    encoded = {key: b58(value) for key, value in fields.items() if value}
    return json.dumps(encoded, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SigningKey:
    """One engine node's account key; derived from a seed, so a restarted engine keeps it.

    A restart must not invalidate the signatures in the runners' environments (the real
    engine's key lives in its keybase on disk), hence a deterministic key, not a random one.
    """

    seed: bytes
    _private: ec.EllipticCurvePrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scalar = int.from_bytes(hashlib.sha256(b"mesg local engine key\0" + self.seed).digest())
        private = ec.derive_private_key(scalar % (_ORDER - 1) + 1, ec.SECP256K1())
        object.__setattr__(self, "_private", private)

    def sign(self, payload: bytes) -> str:
        """Base64 of ``r || s`` (low ``s``), the form ``MESG_REGISTER_SIGNATURE`` has."""
        r, s = decode_dss_signature(self._private.sign(payload, ec.ECDSA(hashes.SHA256())))
        if s > _HALF_ORDER:
            s = _ORDER - s
        return base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()

    def verifies(self, payload: bytes, signature: str) -> bool:
        """Whether ``signature`` (as found in the request metadata) is this key's over ``payload``."""
        raw = decode_signature(signature)
        if len(raw) != 64:
            return False
        r, s = int.from_bytes(raw[:32]), int.from_bytes(raw[32:])
        if not 0 < r < _ORDER or not 0 < s <= _HALF_ORDER:
            return False
        try:
            self._private.public_key().verify(encode_dss_signature(r, s), payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def decode_signature(signature: str) -> bytes:
    """The raw bytes of a base64 signature; Go's strict StdEncoding error texts if malformed."""
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"illegal base64 data: {exc}") from None
