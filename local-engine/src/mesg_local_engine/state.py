"""The local engine's memory: services, instances, executions, and the streams fed from them.

All methods are synchronous and run on the event loop thread, so no locks are needed and a
publish is one pass over the subscribers. Errors are ``LocalEngineError`` carrying the gRPC status
code the servicers answer with:

- ``NOT_FOUND``: unknown service, instance or execution hash; unknown task or event key.
- ``INVALID_ARGUMENT``: invalid inputs or event data, missing event key, malformed env,
  an Update without a result.
- ``FAILED_PRECONDITION``: an Update of an execution that is not InProgress.
- ``ALREADY_EXISTS``: creating a service or instance that is already there.
- ``PERMISSION_DENIED``: a G3 Result from a runner that is not the execution's executor.

(The real engine answers all of these with code UNKNOWN; only the texts are faithful. The G3
runner API answers UNKNOWN as the engine does, so a service must go by the text there.)
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import random
import struct
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc

from mesg_local_engine._proto.mesg.api import event_pb2 as api_event_pb2
from mesg_local_engine._proto.mesg.api import execution_pb2 as api_execution_pb2
from mesg_local_engine._proto.mesg.api import service_pb2 as api_service_pb2
from mesg_local_engine._proto.mesg.grpc.runner import runner_pb2
from mesg_local_engine._proto.mesg.types import event_pb2 as types_event_pb2
from mesg_local_engine._proto.mesg.types import execution_pb2 as types_execution_pb2
from mesg_local_engine._proto.mesg.types import instance_pb2 as types_instance_pb2
from mesg_local_engine._proto.mesg.types import service_pb2 as types_service_pb2
from mesg_local_engine.definition import service_message
from mesg_local_engine.hash_text import b58
from mesg_local_engine.validation import check_data, check_inputs, check_outputs, go_quote

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_FINISHED_EXECUTIONS",
    "DEFAULT_QUEUE_SIZE",
    "EngineState",
    "EventFilter",
    "ExecutionFilter",
    "ExecutionJournal",
    "LocalEngineError",
    "Subscription",
    "merge_env",
]

DEFAULT_QUEUE_SIZE = 100_000
DEFAULT_MAX_FINISHED_EXECUTIONS = 100_000

_Status = types_execution_pb2.Status
IN_PROGRESS = types_execution_pb2.InProgress
COMPLETED = types_execution_pb2.Completed
FAILED = types_execution_pb2.Failed


class LocalEngineError(Exception):
    """An engine refusal: the gRPC status code and the engine's message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """The engine's execution filter: statuses any-of (empty = all), the rest must equal."""

    statuses: frozenset[int] = frozenset()
    instance_hash: bytes = b""
    task_key: str = ""
    tags: tuple[str, ...] = ()
    #: G2 (v0.17+) and G3's runner stream: only the executions this runner is the executor of.
    executor_hash: bytes = b""

    @classmethod
    def from_proto(cls, message: api_execution_pb2.StreamExecutionRequest.Filter) -> ExecutionFilter:
        task_key = message.taskKey
        return cls(
            statuses=frozenset(message.statuses),
            instance_hash=message.instanceHash,
            task_key="" if task_key == "*" else task_key,
            tags=tuple(message.tags),
            executor_hash=message.executorHash,
        )

    def matches(
        self,
        status: int,
        instance_hash: bytes,
        task_key: str,
        tags: Sequence[str],
        executor_hash: bytes = b"",
    ) -> bool:
        if self.statuses and status not in self.statuses:
            return False
        if self.instance_hash and self.instance_hash != instance_hash:
            return False
        if self.executor_hash and self.executor_hash != executor_hash:
            return False
        if self.task_key and self.task_key != task_key:
            return False
        return all(tag in tags for tag in self.tags)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """The engine's event filter: each set field must equal (key ``*`` means any)."""

    hash: bytes = b""
    instance_hash: bytes = b""
    key: str = ""

    @classmethod
    def from_proto(cls, message: api_event_pb2.StreamEventRequest.Filter) -> EventFilter:
        key = message.key
        return cls(
            hash=message.hash,
            instance_hash=message.instanceHash,
            key="" if key == "*" else key,
        )

    def matches(self, event_hash: bytes, instance_hash: bytes, key: str) -> bool:
        if self.hash and self.hash != event_hash:
            return False
        if self.instance_hash and self.instance_hash != instance_hash:
            return False
        return not self.key or self.key == key


_F = TypeVar("_F", ExecutionFilter, EventFilter)


class Subscription(Generic[_F]):
    """One stream's queue of serialised messages; ``dropped`` once it fell too far behind.

    Messages are serialised at publish time: that snapshots the execution (a later Update
    mutates it) and costs one serialisation however many streams receive it.
    """

    __slots__ = ("closed", "dropped", "filter", "queue")

    def __init__(self, filter: _F, maxsize: int) -> None:
        self.filter: _F = filter
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self.dropped = False
        #: Set by ``EngineState.close_streams``: the stream ends cleanly (status OK).
        self.closed = False


class _Service:
    """A stored service, with its tasks and events by key (the engine looks them up by key)."""

    __slots__ = ("events", "message", "tasks")

    def __init__(self, message: types_service_pb2.Service) -> None:
        self.message = message
        self.tasks = {task.key: task for task in message.tasks}
        self.events = {event.key: event for event in message.events}


class _Instance:
    __slots__ = ("env", "message", "service")

    def __init__(self, message: types_instance_pb2.Instance, service: _Service, env: tuple[str, ...]) -> None:
        self.message = message
        self.service = service
        self.env = env


class _Execution:
    __slots__ = ("message", "service_name", "tags", "task")

    def __init__(
        self, message: types_execution_pb2.Execution, service_name: str, task: types_service_pb2.Service.Task
    ) -> None:
        self.message = message
        self.service_name = service_name
        self.task = task
        self.tags = tuple(message.tags)


_RECORD_HEADER = struct.Struct(">I")


class ExecutionJournal:
    """An append-only file of executions, as the real engine persists them (LevelDB).

    Each record is a 4-byte big-endian length and a serialised ``mesg.types.Execution``: its
    state after a Create or an Update, the last record of a hash winning on replay. A record
    is one ``os.write`` on an ``O_APPEND`` descriptor, so once the call returns the kernel has
    it and a SIGKILL of the engine loses nothing (a power cut may: there is no fsync). A
    torn record at the end (a crash inside a write) is cut off when the file is opened.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def read(self) -> list[types_execution_pb2.Execution]:
        """Every complete record, oldest first; truncates a torn tail."""
        with open(self.path, "rb") as file:
            data = file.read()
        records: list[types_execution_pb2.Execution] = []
        offset, size = 0, len(data)
        while offset + _RECORD_HEADER.size <= size:
            (length,) = _RECORD_HEADER.unpack_from(data, offset)
            end = offset + _RECORD_HEADER.size + length
            if end > size:
                break
            records.append(types_execution_pb2.Execution.FromString(data[offset + _RECORD_HEADER.size : end]))
            offset = end
        if offset != size:
            logger.warning(
                "state file %s: cut a torn record of %d bytes at its end", self.path, size - offset
            )
            os.truncate(self.path, offset)
        return records

    def append(self, payload: bytes) -> None:
        record = _RECORD_HEADER.pack(len(payload)) + payload
        written = os.write(self._fd, record)
        if written != len(record):  # a full disk; never seen on a regular file otherwise
            raise OSError(f"state file {self.path}: short write ({written} of {len(record)} bytes)")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class EngineState:
    """Everything engine v0.16 keeps, in memory, with its rules and its stream fan-out."""

    def __init__(
        self,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_finished_executions: int = DEFAULT_MAX_FINISHED_EXECUTIONS,
    ) -> None:
        if queue_size < 1 or max_finished_executions < 0:
            raise ValueError("queue_size must be >= 1 and max_finished_executions >= 0")
        self._queue_size = queue_size
        self._max_finished = max_finished_executions
        self._services: dict[bytes, _Service] = {}
        self._instances: dict[bytes, _Instance] = {}
        # In progress: the live message. Finished: (status, serialised execution), oldest
        # first; immutable from then on, and far smaller than a message.
        self._executions: dict[bytes, _Execution] = {}
        self._finished: OrderedDict[bytes, tuple[int, bytes]] = OrderedDict()
        self._execution_subs: tuple[Subscription[ExecutionFilter], ...] = ()
        self._event_subs: tuple[Subscription[EventFilter], ...] = ()
        self._salt = os.urandom(16)
        self._counter = itertools.count(1)
        self._journal: ExecutionJournal | None = None
        # G2/G3: each instance's runners; an execution's executor is one of them, at random.
        self._runners: dict[bytes, tuple[bytes, ...]] = {}
        self._random = random.Random()

    # --- persistence --------------------------------------------------------------------

    def persist_to(self, journal: ExecutionJournal) -> int:
        """Replay ``journal`` into this state, then append every execution change to it.

        Call it once the service and its instances exist: an execution is restored only if
        its instance is known (same mesg.yml and env give the same instance hash). Returns
        the number of executions restored.
        """
        restored: dict[bytes, types_execution_pb2.Execution] = {}
        for message in journal.read():
            restored.pop(message.hash, None)  # re-insert: order of last change, oldest first
            restored[message.hash] = message
        skipped = 0
        for execution_hash, message in restored.items():
            if message.status == IN_PROGRESS:
                instance = self._instances.get(message.instanceHash)
                task = instance.service.tasks.get(message.taskKey) if instance else None
                if instance is None or task is None:
                    skipped += 1
                    continue
                self._executions[execution_hash] = _Execution(message, instance.service.message.name, task)
            else:
                self._executions.pop(execution_hash, None)
                self._finished[execution_hash] = (message.status, message.SerializeToString())
                while len(self._finished) > self._max_finished:
                    self._finished.popitem(last=False)
        if skipped:
            logger.warning(
                "state file %s: %d executions of unknown instances not restored", journal.path, skipped
            )
        self._journal = journal
        return len(restored) - skipped

    # --- services -----------------------------------------------------------------------

    @staticmethod
    def service_hash(request: api_service_pb2.CreateServiceRequest) -> bytes:
        """sha256 of the request's deterministic serialisation: same mesg.yml, same hash."""
        return hashlib.sha256(request.SerializeToString(deterministic=True)).digest()

    def create_service(self, request: api_service_pb2.CreateServiceRequest) -> bytes:
        if not request.name:
            raise LocalEngineError(grpc.StatusCode.INVALID_ARGUMENT, "service name is required")
        service_hash = self.service_hash(request)
        if service_hash in self._services:
            raise LocalEngineError(
                grpc.StatusCode.ALREADY_EXISTS,
                f'service "{b58(service_hash)}" already exists',
            )
        message = service_message(request, service_hash)
        if not message.sid:
            message.sid = "_" + b58(service_hash)
        self._services[service_hash] = _Service(message)
        return service_hash

    def get_service(self, service_hash: bytes) -> types_service_pb2.Service:
        return self._service(service_hash).message

    def list_services(self) -> list[types_service_pb2.Service]:
        return [service.message for service in self._services.values()]

    def service_exists(self, service_hash: bytes) -> bool:
        return service_hash in self._services

    def _service(self, service_hash: bytes) -> _Service:
        try:
            return self._services[service_hash]
        except KeyError:
            raise LocalEngineError(
                grpc.StatusCode.NOT_FOUND, f'service "{b58(service_hash)}" not found'
            ) from None

    # --- instances ----------------------------------------------------------------------

    def create_instance(self, service_hash: bytes, env: Iterable[str]) -> bytes:
        """Start an instance: the service's env defaults overridden by ``env``."""
        service = self._service(service_hash)
        merged = merge_env(service.message.configuration.env, env)
        digest = hashlib.sha256(service_hash)
        for item in sorted(merged):
            digest.update(b"\0" + item.encode())
        instance_hash = digest.digest()
        if instance_hash in self._instances:
            raise LocalEngineError(
                grpc.StatusCode.ALREADY_EXISTS,
                f'instance "{b58(instance_hash)}" already exists',
            )
        message = types_instance_pb2.Instance(hash=instance_hash, serviceHash=service_hash)
        self._instances[instance_hash] = _Instance(message, service, merged)
        return instance_hash

    def set_runners(self, instance_hash: bytes, runners: Sequence[bytes]) -> None:
        """The runners of an instance (G2, G3): each new execution gets one of them as executor."""
        self._instance(instance_hash)
        self._runners[instance_hash] = tuple(runners)

    def get_instance(self, instance_hash: bytes) -> types_instance_pb2.Instance:
        return self._instance(instance_hash).message

    def instance_env(self, instance_hash: bytes) -> tuple[str, ...]:
        """The ``K=V`` list the engine would start the instance's container with."""
        return self._instance(instance_hash).env

    def list_instances(self, service_hash: bytes = b"") -> list[types_instance_pb2.Instance]:
        return [
            instance.message
            for instance in self._instances.values()
            if not service_hash or instance.message.serviceHash == service_hash
        ]

    def delete_instance(self, instance_hash: bytes) -> None:
        self._instance(instance_hash)
        del self._instances[instance_hash]

    def _instance(self, instance_hash: bytes) -> _Instance:
        try:
            return self._instances[instance_hash]
        except KeyError:
            raise LocalEngineError(
                grpc.StatusCode.NOT_FOUND, f'instance "{b58(instance_hash)}" not found'
            ) from None

    # --- executions ---------------------------------------------------------------------

    def create_execution(self, request: api_execution_pb2.CreateExecutionRequest) -> bytes:
        """Validate, store and publish a new execution, straight in status InProgress."""
        service = self._instance(request.instanceHash).service
        name = service.message.name
        task = service.tasks.get(request.taskKey)
        if task is None:
            raise LocalEngineError(
                grpc.StatusCode.NOT_FOUND,
                f"service {go_quote(name)} - task {go_quote(request.taskKey)} not found",
            )
        error = check_inputs(name, task, request.inputs)
        if error is not None:
            raise LocalEngineError(grpc.StatusCode.INVALID_ARGUMENT, error)
        execution_hash = self._new_hash(b"execution")
        message = types_execution_pb2.Execution(
            hash=execution_hash,
            status=IN_PROGRESS,
            instanceHash=request.instanceHash,
            taskKey=request.taskKey,
            inputs=request.inputs,
            tags=request.tags,
        )
        runners = self._runners.get(request.instanceHash)
        if runners:
            # As the engine when the creator names no executor: any runner of the instance.
            message.executorHash = self._random.choice(runners)
        record = _Execution(message, name, task)
        self._executions[execution_hash] = record
        payload = self._publish_execution(record)
        if self._journal is not None:
            self._journal.append(payload or message.SerializeToString())
        return execution_hash

    def get_execution(self, execution_hash: bytes) -> bytes:
        """The execution, serialised now so later updates cannot change the answer."""
        finished = self._finished.get(execution_hash)
        if finished is not None:
            return finished[1]
        payload: bytes = self._execution(execution_hash).message.SerializeToString()
        return payload

    def update_execution(self, request: api_execution_pb2.UpdateExecutionRequest) -> None:
        """Finish an InProgress execution; outputs that break the task's rules mark it Failed.

        Invalid outputs do not make the call fail: like the engine, the execution is
        Failed with the validation message and the caller is told nothing.
        """
        finished = self._finished.get(request.hash)
        if finished is not None:
            raise LocalEngineError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Execution status error: "{_Status.Name(finished[0])}" instead of "InProgress"',
            )
        record = self._execution(request.hash)
        message = record.message
        result = request.WhichOneof("result")
        if result == "outputs":
            error = check_outputs(record.service_name, record.task, request.outputs)
            if error is None:
                message.outputs.CopyFrom(request.outputs)
                message.status = COMPLETED
            else:
                message.error = error
                message.status = FAILED
        elif result == "error":
            message.error = request.error
            message.status = FAILED
        else:
            raise LocalEngineError(grpc.StatusCode.INVALID_ARGUMENT, "no execution result supplied")
        payload = self._publish_execution(record) or message.SerializeToString()
        if self._journal is not None:
            self._journal.append(payload)
        self._retire(request.hash, message.status, payload)

    def submit_result(self, runner: bytes, request: runner_pb2.ResultRequest) -> None:
        """G3's Runner.Result: only the execution's executor may finish it, then as Update.

        The engine looks the execution up first (unknown: refused), then compares executors,
        with the texts of server/grpc/runner/runner.go.
        """
        finished = self._finished.get(request.executionHash)
        if finished is not None:
            executor = types_execution_pb2.Execution.FromString(finished[1]).executorHash
        else:
            executor = self._execution(request.executionHash).message.executorHash
        if executor != runner:
            raise LocalEngineError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this runner ({go_quote(b58(runner))}) is not authorized to submit the result "
                f"of this execution, the executor should be {go_quote(b58(executor))}",
            )
        update = api_execution_pb2.UpdateExecutionRequest(hash=request.executionHash)
        result = request.WhichOneof("result")
        if result == "outputs":
            update.outputs.CopyFrom(request.outputs)
        elif result == "error":
            update.error = request.error
        self.update_execution(update)

    def _execution(self, execution_hash: bytes) -> _Execution:
        try:
            return self._executions[execution_hash]
        except KeyError:
            raise LocalEngineError(
                grpc.StatusCode.NOT_FOUND,
                f'execution "{b58(execution_hash)}" not found',
            ) from None

    def _retire(self, execution_hash: bytes, status: int, payload: bytes) -> None:
        """Keep only the most recent finished executions, so a long soak stays bounded."""
        del self._executions[execution_hash]
        finished = self._finished
        finished[execution_hash] = (status, payload)
        while len(finished) > self._max_finished:
            finished.popitem(last=False)

    @property
    def execution_count(self) -> int:
        """Executions currently held (in progress plus the retained finished ones)."""
        return len(self._executions) + len(self._finished)

    def subscribe_executions(self, filter: ExecutionFilter) -> Subscription[ExecutionFilter]:
        subscription = Subscription(filter, self._queue_size)
        self._execution_subs = (*self._execution_subs, subscription)
        return subscription

    def unsubscribe_executions(self, subscription: Subscription[ExecutionFilter]) -> None:
        self._execution_subs = tuple(s for s in self._execution_subs if s is not subscription)

    def _publish_execution(self, record: _Execution) -> bytes | None:
        """Queue the execution to matching streams; the serialised bytes, if it was needed."""
        subscriptions = self._execution_subs
        if not subscriptions:
            return None
        message = record.message
        status = message.status
        instance_hash = message.instanceHash
        task_key = message.taskKey
        tags = record.tags
        executor = message.executorHash
        payload: bytes | None = None
        dropped = False
        for subscription in subscriptions:
            if subscription.filter.matches(status, instance_hash, task_key, tags, executor):
                if payload is None:
                    payload = message.SerializeToString()
                dropped |= not _deliver(subscription, payload)
        if dropped:
            self._execution_subs = tuple(s for s in self._execution_subs if not s.dropped)
        return payload

    # --- events -------------------------------------------------------------------------

    def create_event(self, request: api_event_pb2.CreateEventRequest) -> bytes:
        """Validate and publish an event; events are not stored (v0.16 has no Event.Get)."""
        if not request.key:
            raise LocalEngineError(grpc.StatusCode.INVALID_ARGUMENT, "create event: key missing")
        instance = self._instances.get(request.instanceHash)
        if instance is None:
            raise LocalEngineError(
                grpc.StatusCode.NOT_FOUND,
                f'create event: data instance "{b58(request.instanceHash)}" not found',
            )
        name = instance.service.message.name
        event = instance.service.events.get(request.key)
        if event is None:
            raise LocalEngineError(
                grpc.StatusCode.NOT_FOUND,
                f"create event: data service {go_quote(name)} - event {go_quote(request.key)} not found",
            )
        error = check_data(name, event, request.data)
        if error is not None:
            raise LocalEngineError(grpc.StatusCode.INVALID_ARGUMENT, f"create event: data {error}")
        event_hash = self._new_hash(b"event")
        payload: bytes | None = None
        dropped = False
        for subscription in self._event_subs:
            if subscription.filter.matches(event_hash, request.instanceHash, request.key):
                if payload is None:
                    payload = types_event_pb2.Event(
                        hash=event_hash,
                        instanceHash=request.instanceHash,
                        key=request.key,
                        data=request.data,
                    ).SerializeToString()
                dropped |= not _deliver(subscription, payload)
        if dropped:
            self._event_subs = tuple(s for s in self._event_subs if not s.dropped)
        return event_hash

    def subscribe_events(self, filter: EventFilter) -> Subscription[EventFilter]:
        subscription = Subscription(filter, self._queue_size)
        self._event_subs = (*self._event_subs, subscription)
        return subscription

    def unsubscribe_events(self, subscription: Subscription[EventFilter]) -> None:
        self._event_subs = tuple(s for s in self._event_subs if s is not subscription)

    # --- shared -------------------------------------------------------------------------

    def close_streams(self) -> int:
        """End every open execution and event stream cleanly, as a restarting proxy would.

        Subscribers are unregistered at once (nothing more is queued for them); each stream
        ends with status OK once it has sent what was already queued. Returns their number.
        """
        subscriptions: tuple[Subscription[Any], ...] = (*self._execution_subs, *self._event_subs)
        self._execution_subs = ()
        self._event_subs = ()
        for subscription in subscriptions:
            subscription.closed = True
            try:
                subscription.queue.put_nowait(_WAKE_UP)
            except asyncio.QueueFull:
                subscription.dropped = True
        return len(subscriptions)

    def _new_hash(self, kind: bytes) -> bytes:
        """A unique 32-byte hash: sha256 of a counter and this engine's random salt."""
        return hashlib.sha256(kind + self._salt + next(self._counter).to_bytes(8, "big")).digest()


#: Queued to wake a closed stream; never a message (an Execution or Event always has a hash).
_WAKE_UP = b""


def _deliver(subscription: Subscription[_F], payload: bytes) -> bool:
    """Queue without waiting; a subscriber whose queue is full is cut off, not waited for."""
    try:
        subscription.queue.put_nowait(payload)
    except asyncio.QueueFull:
        subscription.dropped = True
        logger.warning(
            "disconnecting a stream subscriber: %d messages queued and not read",
            subscription.queue.qsize(),
        )
        return False
    return True


def merge_env(defaults: Iterable[str], overrides: Iterable[str]) -> tuple[str, ...]:
    """Apply ``K=V`` overrides to ``K=V`` defaults, as the engine builds an instance's env.

    Defaults keep their order with overridden values in place; new keys follow in the order
    given. Raises ``LocalEngineError(INVALID_ARGUMENT)`` for an item without ``=`` or a key.
    """
    merged: dict[str, str] = {}
    for item in itertools.chain(defaults, overrides):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LocalEngineError(
                grpc.StatusCode.INVALID_ARGUMENT, f"env {item!r} is not of the form KEY=VALUE"
            )
        merged[key] = value
    return tuple(f"{key}={value}" for key, value in merged.items())
