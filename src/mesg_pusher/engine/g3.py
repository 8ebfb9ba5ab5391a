"""G3, engine v0.21 to v0.26: register as a runner with the signature, then call with the token.

The engine keeps credential tokens in memory only, and a second ``Register`` of the same
runner deletes the first token. So the token can vanish under us at any call: the engine
restarted, or another process registered as this runner. Either way the engine answers
"credential token doesn't exist"; we register again (with backoff when it keeps happening)
and repeat the call once. Results held meanwhile by the outbox are delivered after.

A ``Register`` the engine refuses (a wrong signature) is retried with backoff, logged with
what to check, and never ends the process: the engine may be fixed (or its key restored)
while we wait. A ``Result`` refused for good (not our execution, or the engine no longer
knows it) is an ``EngineRejected``: the outbox logs it once and drops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import grpc
import grpc.aio

from mesg_pusher._proto.mesg.grpc.orchestrator import runner_pb2 as orchestrator_pb2
from mesg_pusher._proto.mesg.grpc.orchestrator import runner_pb2_grpc as orchestrator_grpc
from mesg_pusher._proto.mesg.grpc.runner import runner_pb2, runner_pb2_grpc
from mesg_pusher.backoff import backoff
from mesg_pusher.codec import dict_to_struct
from mesg_pusher.engine.base import CALL_TIMEOUT, TRANSIENT, EngineClient, error_from, fill_result
from mesg_pusher.errors import EngineError
from mesg_pusher.identity import SIGNATURE_VARIABLE, EngineIdentity, Generation

logger = logging.getLogger(__name__)

T = TypeVar("T")

SIGNATURE_KEY = "mesg_request_signature"
TOKEN_KEY = "mesg_credential_token"
# The engine's own texts (server/grpc/runner/runner.go): the token is unknown, or was not sent.
TOKEN_LOST = ("credential token doesn't exist", "credential not found in metadata")
# A token lost sooner than this after we got it counts as churn (another process registering
# as the same runner, again and again): registering again then waits, with growing backoff.
CHURN_WINDOW = 10.0


class CredentialLost(EngineError):
    """The engine no longer knows our token; registering again will fix it, so retry."""


def token_lost(details: str | None) -> bool:
    """Whether the engine's answer says it does not know (or did not get) our token."""
    return details is not None and any(text in details for text in TOKEN_LOST)


class Registration:
    """Our credential token: obtained with ``Register``, dropped when the engine forgets it.

    One ``Register`` at a time; callers that need a token while one is refused wait for the
    next attempt, spaced by backoff (5 s at most while the engine is away, 30 s while it
    refuses the signature).
    """

    def __init__(self, channel: grpc.aio.Channel, identity: EngineIdentity) -> None:
        if identity.service_hash is None or identity.env_hash is None or not identity.signature:
            raise ValueError("g3 needs the service hash, the env hash and the register signature")
        self._stub = orchestrator_grpc.RunnerStub(channel)
        self._request = orchestrator_pb2.RunnerRegisterRequest(
            serviceHash=identity.service_hash, envHash=identity.env_hash
        )
        self._metadata = ((SIGNATURE_KEY, identity.signature),)
        self._runner = identity.runner
        self._token: str | None = None
        self._issued_at = 0.0
        self._lock = asyncio.Lock()
        self._failures = 0
        self._churn = 0
        self._not_before = 0.0
        self.registrations = 0

    async def token(self) -> str:
        """The current token, registering first when there is none."""
        if self._token is not None:
            return self._token
        async with self._lock:
            if self._token is not None:  # another caller registered while we waited
                return self._token
            wait = self._not_before - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
            return await self._register()

    async def _register(self) -> str:
        loop = asyncio.get_running_loop()
        try:
            response = await self._stub.Register(self._request, metadata=self._metadata, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            self._failures += 1
            away = exc.code() in TRANSIENT
            delay = backoff(self._failures - 1, cap=5.0 if away else 30.0)
            self._not_before = loop.time() + delay
            if away:
                raise error_from(
                    exc.code(), exc.details(), f"registration as runner {self._runner}"
                ) from None
            reason = exc.details() or exc.code().name
            if self._failures == 1 or self._failures % 10 == 0:
                logger.error(
                    "the engine refused to register runner %s: %s. %s must be a signature of the "
                    "Register request (MESG_SERVICE_HASH and MESG_ENV_HASH) by a key this engine "
                    "accepts (its orchestrator's --authorized-pubkeys); retrying with backoff (attempt %d)",
                    self._runner,
                    reason,
                    SIGNATURE_VARIABLE,
                    self._failures,
                )
            raise EngineError(
                f"registration as runner {self._runner} refused: {reason} (check {SIGNATURE_VARIABLE}); "
                f"next attempt in {delay:.1f} s"
            ) from None
        self.registrations += 1
        if self.registrations == 1:
            logger.info("registered as runner %s", self._runner)
        else:
            logger.info("registered again as runner %s; carrying on", self._runner)
        self._failures = 0
        token: str = response.token
        self._token, self._issued_at = token, loop.time()
        return token

    def lost(self, token: str, *, while_streaming: bool) -> None:
        """The engine refused ``token``; forget it (once) so the next call registers again.

        ``while_streaming``: our execution stream opened with this token is still up, so the
        engine did not restart (a restart breaks the stream): someone else registered.
        """
        if self._token != token:
            return  # already replaced by a newer registration
        self._token = None
        now = asyncio.get_running_loop().time()
        self._churn = self._churn + 1 if now - self._issued_at < CHURN_WINDOW else 0
        if self._churn:
            self._not_before = now + backoff(self._churn - 1, cap=30.0)
        if while_streaming:
            logger.error(
                "our credential token was invalidated while the engine kept running: another process "
                "registered as runner %s (two processes started with the same %s?); registering again",
                self._runner,
                SIGNATURE_VARIABLE,
            )
        else:
            logger.warning(
                "the engine no longer knows our credential token (it restarted, or another process "
                "registered as runner %s); registering again",
                self._runner,
            )


class G3Client(EngineClient):
    """The runner API (``mesg.grpc.runner.Runner``), authenticated by a registered token."""

    generation: Generation = "g3"

    def __init__(self, identity: EngineIdentity, keepalive_ms: int = 300_000) -> None:
        super().__init__(identity, keepalive_ms)
        self.registration = Registration(self._channel, identity)
        self._runner = runner_pb2_grpc.RunnerStub(self._channel)
        self._streams: dict[int, str] = {}  # open execution streams -> the token they opened with

    def _error(self, code: grpc.StatusCode, details: str | None, what: str) -> EngineError:
        if token_lost(details):
            return CredentialLost(f"{what}: the engine does not know our credential token ({details})")
        return super()._error(code, details, what)

    async def _with_token(self, call: Callable[[tuple[tuple[str, str], ...]], Awaitable[T]]) -> T:
        """Run ``call`` with our token; if the engine forgot it, register again and retry once."""
        for last in (False, True):
            token = await self.registration.token()
            try:
                return await call(((TOKEN_KEY, token),))
            except (CredentialLost, grpc.aio.AioRpcError) as exc:
                if isinstance(exc, grpc.aio.AioRpcError) and not token_lost(exc.details()):
                    raise
                self.registration.lost(token, while_streaming=token in self._streams.values())
                if last:
                    raise
        raise AssertionError("unreachable")

    async def _open_stream(self) -> Any:
        async def start(metadata: tuple[tuple[str, str], ...]) -> Any:
            call = await self._ready(self._runner.Execution(runner_pb2.ExecutionRequest(), metadata=metadata))
            self._streams[id(call)] = metadata[0][1]
            return call

        return await self._with_token(start)

    def _stream_closed(self, call: Any) -> None:
        self._streams.pop(id(call), None)

    async def _send_result(
        self, execution_hash: bytes, outputs: Mapping[str, Any] | None, error: str | None
    ) -> None:
        request = runner_pb2.ResultRequest(executionHash=execution_hash)
        fill_result(request, outputs, error)
        await self._with_token(
            lambda metadata: self._runner.Result(request, metadata=metadata, timeout=CALL_TIMEOUT)
        )

    async def _send_event(self, key: str, data: Mapping[str, Any]) -> None:
        request = runner_pb2.EventRequest(key=key, data=dict_to_struct(data))
        await self._with_token(
            lambda metadata: self._runner.Event(request, metadata=metadata, timeout=CALL_TIMEOUT)
        )
