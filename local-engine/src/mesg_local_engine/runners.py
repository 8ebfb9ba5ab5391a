"""Runners of the instance (G2, G3) and the G3 engine's tokens, as engine v0.17-v0.26 keep them.

From v0.17 an instance runs as one *runner* per engine node: the runner hash names that
process, and an execution's executor is one of the instance's runners. Here one local engine
plays every node: node ``i`` has its own account key (``SigningKey``), and its runner of the
instance has its own hash and its own ``MESG_REGISTER_SIGNATURE``.

G3's Register (server/grpc/orchestrator/runner.go) is emulated as written there: check the
signature, find the runner, delete every other token of that runner, store a fresh random
token. Tokens are in memory only (a ``sync.Map`` in the engine): a restart loses them all.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from mesg_local_engine.hash_text import b58
from mesg_local_engine.signature import (
    SignatureError,
    SigningKey,
    decode_signature,
    register_payload,
)
from mesg_local_engine.state import LocalEngineError

logger = logging.getLogger(__name__)

__all__ = [
    "CREDENTIAL_TOKEN",
    "REQUEST_SIGNATURE",
    "Runner",
    "RunnerRegistry",
    "env_hash",
    "runner_hash",
]

#: Metadata keys, as the engine names them.
REQUEST_SIGNATURE = "mesg_request_signature"
CREDENTIAL_TOKEN = "mesg_credential_token"

# The engine's own error texts (server/grpc/orchestrator/authorizer.go, server/grpc/runner/runner.go).
_NO_SIGNATURE = f'signature not found in metadata, make sure to set it using the key "{REQUEST_SIGNATURE}"'
_BAD_SIGNATURE = "verification of the signature failed"
_NO_TOKEN = f'credential not found in metadata, make sure to set it using the name "{CREDENTIAL_TOKEN}"'
_UNKNOWN_TOKEN = "credential token doesn't exist"


def env_hash(env: Sequence[str]) -> bytes:
    """The hash of an instance's env (``MESG_ENV_HASH``): same ``K=V`` set, same hash."""
    digest = hashlib.sha256(b"env")
    for item in sorted(env):
        digest.update(b"\0" + item.encode())
    return digest.digest()


def runner_hash(node: int, instance_hash: bytes) -> bytes:
    """Node ``node``'s runner of an instance: the engine hashes the owner address and the instance."""
    return hashlib.sha256(b"runner\0" + node.to_bytes(4, "big") + instance_hash).digest()


@dataclass(frozen=True)
class Runner:
    """One runner of the instance: which node runs it, its hash and its Register signature."""

    node: int
    hash: bytes
    signature: str

    def __repr__(self) -> str:
        return f"Runner(node={self.node}, hash={b58(self.hash)})"


class RunnerRegistry:
    """The instance's runners, one per emulated node, and the G3 tokens that name them."""

    def __init__(
        self,
        service_hash: bytes,
        instance_hash: bytes,
        instance_env: Sequence[str],
        count: int,
        *,
        key_seed: bytes = b"",
        signed: bool = False,
    ) -> None:
        """``count`` runners; ``signed`` (G3) gives each node a key and each runner a signature."""
        if count < 1:
            raise ValueError("an instance needs at least one runner")
        self.service_hash = service_hash
        self.instance_hash = instance_hash
        self.env_hash = env_hash(instance_env)
        self._keys: tuple[SigningKey, ...] = ()
        payload = register_payload(service_hash, self.env_hash)
        if signed:
            self._keys = tuple(SigningKey(key_seed + node.to_bytes(4, "big")) for node in range(count))
        self.runners = tuple(
            Runner(node, runner_hash(node, instance_hash), self._keys[node].sign(payload) if signed else "")
            for node in range(count)
        )
        self._tokens: dict[str, bytes] = {}

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(runner.hash for runner in self.runners)

    def register(self, signature: str | None, service_hash: bytes, env: bytes) -> str:
        """G3 Register: a fresh token for the runner the signature names; its old tokens go."""
        if not signature:
            raise LocalEngineError(grpc.StatusCode.UNKNOWN, _NO_SIGNATURE)
        try:
            decode_signature(signature)
        except SignatureError as exc:
            raise LocalEngineError(grpc.StatusCode.UNKNOWN, str(exc)) from None
        payload = register_payload(service_hash, env)
        node = next((i for i, key in enumerate(self._keys) if key.verifies(payload, signature)), None)
        if node is None:
            raise LocalEngineError(grpc.StatusCode.UNKNOWN, _BAD_SIGNATURE)
        if service_hash != self.service_hash or env != self.env_hash:
            # A request signed by a node, for an instance this engine does not run.
            raise LocalEngineError(
                grpc.StatusCode.UNKNOWN,
                f'instance of service "{b58(service_hash)}" with env "{b58(env)}" not found',
            )
        runner = self.runners[node].hash
        dropped = [token for token, owner in self._tokens.items() if owner == runner]
        for token in dropped:
            del self._tokens[token]
        token = b58(secrets.token_bytes(32))
        self._tokens[token] = runner
        logger.info(
            "runner %s registered%s",
            b58(runner),
            f" ({len(dropped)} older token(s) of it deleted)" if dropped else "",
        )
        return token

    def authorize(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> bytes:
        """The runner hash a call's ``mesg_credential_token`` names, or the engine's refusal."""
        token = next((value for key, value in metadata or () if key == CREDENTIAL_TOKEN), None)
        if not token:
            raise LocalEngineError(grpc.StatusCode.UNKNOWN, _NO_TOKEN)
        runner = self._tokens.get(token if isinstance(token, str) else token.decode(errors="replace"))
        if runner is None:
            raise LocalEngineError(grpc.StatusCode.UNKNOWN, _UNKNOWN_TOKEN)
        return runner
