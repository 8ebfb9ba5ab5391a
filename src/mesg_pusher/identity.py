"""Which engine started us, and as what: the generation, read from the variables the engine sets.

Each engine generation starts its services with its own set of variables (see docs/engines.md's
compatibility table). Nothing is asked of the user: G3 when ``MESG_REGISTER_SIGNATURE`` is set,
else G2 when ``MESG_RUNNER_HASH`` is set, else G1 when ``MESG_TOKEN`` is set;
``MESG_PUSHER_ENGINE=g1|g2|g3`` forces one. A missing or contradictory set is a ``ConfigError``
naming the variables, raised at start so the service never half-runs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from mesg_pusher import env
from mesg_pusher.errors import ConfigError
from mesg_pusher.hash_text import b58, from_b58

Generation = Literal["g1", "g2", "g3"]
GENERATIONS: tuple[Generation, ...] = ("g1", "g2", "g3")
FORCE_VARIABLE = "MESG_PUSHER_ENGINE"
SIGNATURE_VARIABLE = "MESG_REGISTER_SIGNATURE"

# What each generation's engine sets, besides MESG_ENDPOINT; the order is docs/engines.md's.
ENGINES: Mapping[Generation, str] = {
    "g1": "engine v0.16",
    "g2": "engine v0.17 to v0.20",
    "g3": "engine v0.21 to v0.26",
}
REQUIRED: Mapping[Generation, tuple[str, ...]] = {
    "g1": ("MESG_ENDPOINT", "MESG_TOKEN"),
    "g2": ("MESG_ENDPOINT", "MESG_INSTANCE_HASH", "MESG_RUNNER_HASH"),
    "g3": ("MESG_ENDPOINT", "MESG_SERVICE_HASH", "MESG_ENV_HASH", SIGNATURE_VARIABLE),
}
# G1's message, kept word for word up to the hint (deployments and tests know it); the hint names
# the local engine of the service's repository (local-engine/), which does not ship with it.
_G1_MISSING = (
    "MESG_ENDPOINT and MESG_TOKEN must be set (the engine sets them when it starts "
    "the service; run `mesg-local-engine --run-service mesg-pusher` to try locally)"
)


def _hash(environ: Mapping[str, str], name: str, what: str) -> bytes | None:
    """A base58 32-byte hash from ``name``, or None when unset; a ConfigError naming it if malformed."""
    text = env.text(environ, name)
    if text is None:
        return None
    try:
        value = from_b58(text)
    except ValueError as exc:
        raise ConfigError(f"{name} is not a base58 {what}: {exc}") from None
    if len(value) != 32:
        raise ConfigError(f"{name} must decode to a 32-byte {what}")
    return value


def _is_base64(text: str) -> bool:
    """Standard, padded base64, as the engine decodes it (Go's ``base64.StdEncoding``)."""
    if len(text) % 4:  # Python accepts some unpadded or over-padded text that Go refuses
        return False
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _listing(names: tuple[str, ...]) -> str:
    """``A, B and C``."""
    return f"{', '.join(names[:-1])} and {names[-1]}"


def detect_generation(environ: Mapping[str, str]) -> Generation:
    """The generation the variables point to; ``MESG_PUSHER_ENGINE`` wins when set."""
    forced = env.text(environ, FORCE_VARIABLE)
    if forced is not None:
        for generation in GENERATIONS:
            if forced.lower() == generation:
                return generation
        raise ConfigError(f"{FORCE_VARIABLE} must be g1, g2 or g3 (or unset to detect), not {forced!r}")
    if env.text(environ, SIGNATURE_VARIABLE) is not None:
        return "g3"
    if env.text(environ, "MESG_RUNNER_HASH") is not None:
        return "g2"
    if env.text(environ, "MESG_TOKEN") is not None:
        return "g1"
    raise ConfigError(
        "MESG_ENDPOINT and MESG_TOKEN must be set (engine v0.16), or MESG_ENDPOINT, "
        "MESG_INSTANCE_HASH and MESG_RUNNER_HASH (engine v0.17 to v0.20), or MESG_ENDPOINT, "
        f"MESG_SERVICE_HASH, MESG_ENV_HASH and {SIGNATURE_VARIABLE} (engine v0.21 and later): "
        "the engine sets them when it starts the service; run "
        "`mesg-local-engine --run-service mesg-pusher` to try locally"
    )


@dataclass(frozen=True)
class EngineIdentity:
    """Where the engine is and who we are to it; enough to pick and build the adapter.

    ``instance_hash`` is the instance whose work we do (G1: ``MESG_TOKEN``; G2, G3:
    ``MESG_INSTANCE_HASH``, informative only in G3, where the engine knows it from the runner).
    ``runner_hash`` is this process's runner (G2, G3). ``service_hash``, ``env_hash`` and
    ``signature`` are what G3's ``Register`` takes. The signature is a credential: it never
    appears in a repr, a log line or an error.
    """

    generation: Generation
    endpoint: str
    instance_hash: bytes | None = None
    runner_hash: bytes | None = None
    service_hash: bytes | None = None
    env_hash: bytes | None = None
    signature: str = field(default="", repr=False)

    def __repr__(self) -> str:
        parts = [f"generation={self.generation!r}", f"endpoint={self.endpoint!r}"]
        for name in ("instance_hash", "runner_hash", "service_hash", "env_hash"):
            value: bytes | None = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={b58(value)!r}")
        if self.signature:
            parts.append("signature='***'")
        return f"EngineIdentity({', '.join(parts)})"

    @property
    def engine(self) -> str:
        """The engine versions of this generation, for log lines: ``engine v0.17 to v0.20``."""
        return ENGINES[self.generation]

    @property
    def runner(self) -> str:
        """The runner's base58 hash, or ``"unknown"``, for log lines."""
        return b58(self.runner_hash) if self.runner_hash is not None else "unknown"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> EngineIdentity:
        """Detect the generation and read its variables; a ConfigError naming what is wrong."""
        generation = detect_generation(environ)
        missing = [name for name in REQUIRED[generation] if env.text(environ, name) is None]
        if missing:
            if generation == "g1":
                raise ConfigError(_G1_MISSING)
            reason = (
                f"{FORCE_VARIABLE}={generation}"
                if env.text(environ, FORCE_VARIABLE) is not None
                else f"{'MESG_REGISTER_SIGNATURE' if generation == 'g3' else 'MESG_RUNNER_HASH'} is set"
            )
            raise ConfigError(
                f"{ENGINES[generation]} ({reason}) sets {_listing(REQUIRED[generation])}; "
                f"missing: {', '.join(missing)}"
            )
        endpoint = env.text(environ, "MESG_ENDPOINT") or ""
        if generation == "g1":
            instance = _hash(environ, "MESG_TOKEN", "instance hash")
            return cls("g1", endpoint, instance_hash=instance)
        instance = _hash(environ, "MESG_INSTANCE_HASH", "instance hash")
        token_instance = _hash(environ, "MESG_TOKEN", "instance hash")
        if token_instance is not None and instance is not None and token_instance != instance:
            raise ConfigError(
                "MESG_TOKEN and MESG_INSTANCE_HASH name different instances: MESG_TOKEN is "
                "engine v0.16's, MESG_INSTANCE_HASH later engines'; unset the one that is stale"
            )
        runner = _hash(environ, "MESG_RUNNER_HASH", "runner hash")
        if generation == "g2":
            return cls("g2", endpoint, instance_hash=instance, runner_hash=runner)
        signature = env.text(environ, SIGNATURE_VARIABLE) or ""
        if not _is_base64(signature):
            # Never valid for any engine, and gRPC refuses some characters in metadata outright.
            # The value is a credential: not shown.
            raise ConfigError(
                f"{SIGNATURE_VARIABLE} is not base64 (the engine sets it as the base64 of a signature)"
            )
        return cls(
            "g3",
            endpoint,
            instance_hash=instance,
            runner_hash=runner,
            service_hash=_hash(environ, "MESG_SERVICE_HASH", "service hash"),
            env_hash=_hash(environ, "MESG_ENV_HASH", "env hash"),
            signature=signature,
        )
