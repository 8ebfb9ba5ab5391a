"""What a local engine tells its service processes, per generation: the one place it is written.

The engine's ``READY`` line carries it (``cli``), the harness parses it back (``EngineProcess``),
and ``mesg_env`` turns it into the ``MESG_*`` variables the real engine of that generation
puts in a runner's container (see the protocol reference, "Detecting the generation"):

- G1 (v0.16): ``MESG_ENDPOINT``, ``MESG_TOKEN`` (the instance hash);
- G2 (v0.17-v0.20): ``MESG_ENDPOINT``, ``MESG_INSTANCE_HASH``, ``MESG_RUNNER_HASH``;
- G3 (v0.21-v0.26): those, plus ``MESG_SERVICE_HASH``, ``MESG_ENV_HASH`` and
  ``MESG_REGISTER_SIGNATURE``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from mesg_local_engine.hash_text import b58, from_b58
from mesg_local_engine.runners import Runner

__all__ = ["GENERATIONS", "Deployment", "add_generation_option"]

GENERATIONS = ("g1", "g2", "g3")


def add_generation_option(parser: argparse.ArgumentParser) -> None:
    """``--generation g1|g2|g3``, worded the same wherever a local engine is started."""
    parser.add_argument(
        "--generation",
        choices=GENERATIONS,
        default="g1",
        help="engine to emulate: g1 = v0.16, g2 = v0.17-v0.20, g3 = v0.21-v0.26 (default g1)",
    )


@dataclass(frozen=True)
class Deployment:
    """The service deployed on a local engine: its hashes and its runners (none under G1)."""

    generation: str
    endpoint: str
    service_hash: bytes
    instance_hash: bytes
    env_hash: bytes = b""
    runners: tuple[Runner, ...] = ()

    @property
    def token(self) -> str:
        """Base58 of the instance hash: G1's ``MESG_TOKEN``."""
        return b58(self.instance_hash)

    def mesg_env(self, runner: int = 0) -> dict[str, str]:
        """The ``MESG_*`` variables of the service process that is runner number ``runner``."""
        env = {"MESG_ENDPOINT": self.endpoint}
        if self.generation == "g1":
            env["MESG_TOKEN"] = self.token
            return env
        env["MESG_INSTANCE_HASH"] = self.token
        env["MESG_RUNNER_HASH"] = b58(self.runners[runner].hash)
        if self.generation == "g3":
            env["MESG_SERVICE_HASH"] = b58(self.service_hash)
            env["MESG_ENV_HASH"] = b58(self.env_hash)
            env["MESG_REGISTER_SIGNATURE"] = self.runners[runner].signature
        return env

    def ready_line(self) -> str:
        """``READY endpoint=... token=... service=... generation=... env=... runners=h:sig,...``."""
        runners = ",".join(f"{b58(r.hash)}:{r.signature}" for r in self.runners)
        return (
            f"READY endpoint={self.endpoint} token={self.token} service={b58(self.service_hash)}"
            f" generation={self.generation} env={b58(self.env_hash)} runners={runners}"
        )

    @classmethod
    def from_ready_line(cls, line: str) -> Deployment:
        """Parse ``ready_line``'s output; ``ValueError`` if it is not one."""
        words = line.split()
        if not words or words[0] != "READY":
            raise ValueError(f"not a READY line: {line!r}")
        fields = dict(word.split("=", 1) for word in words[1:])
        runners = tuple(
            Runner(node, from_b58(hash_text), signature)
            for node, (hash_text, _, signature) in enumerate(
                item.partition(":") for item in fields.get("runners", "").split(",") if item
            )
        )
        return cls(
            generation=fields.get("generation", "g1"),
            endpoint=fields["endpoint"],
            service_hash=from_b58(fields["service"]),
            instance_hash=from_b58(fields["token"]),
            env_hash=from_b58(fields["env"]) if fields.get("env") else b"",
            runners=runners,
        )
