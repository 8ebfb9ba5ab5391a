"""Compile a ServiceDefinition into the engine's protobuf messages, and back."""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

from mesg_pusher._proto.mesg.api import service_pb2 as api_service_pb2
from mesg_pusher._proto.mesg.types import service_pb2 as types_service_pb2
from mesg_pusher.definition import (
    Configuration,
    Dependency,
    EventDefinition,
    Parameter,
    ServiceDefinition,
    TaskDefinition,
)

__all__ = ["create_service_request", "definition_from_service", "service_message"]

_Service = types_service_pb2.Service


def create_service_request(
    definition: ServiceDefinition, *, source: str = ""
) -> api_service_pb2.CreateServiceRequest:
    """Build the request ``mesg-cli service:deploy`` sends for this mesg.yml.

    Like the CLI, every map of mesg.yml becomes a list in file order with its key in ``key``.
    """
    return api_service_pb2.CreateServiceRequest(
        sid=definition.sid,
        name=definition.name,
        description=definition.description,
        configuration=_configuration(definition.configuration),
        tasks=[_task(task) for task in definition.tasks.values()],
        events=[_event(event) for event in definition.events.values()],
        dependencies=[_dependency(dep) for dep in definition.dependencies.values()],
        repository=definition.repository,
        source=source,
    )


def service_message(
    request: api_service_pb2.CreateServiceRequest, service_hash: bytes
) -> types_service_pb2.Service:
    """The ``mesg.types.Service`` the engine stores for a create request."""
    return _Service(
        name=request.name,
        description=request.description,
        tasks=request.tasks,
        events=request.events,
        dependencies=request.dependencies,
        configuration=request.configuration,
        repository=request.repository,
        hash=service_hash,
        sid=request.sid,
        source=request.source,
    )


def definition_from_service(service: types_service_pb2.Service) -> ServiceDefinition:
    """Read a stored service back as a ServiceDefinition, to validate values against it."""
    config = service.configuration
    return ServiceDefinition(
        name=service.name,
        sid=service.sid,
        description=service.description,
        repository=service.repository,
        configuration=Configuration(
            env=tuple(config.env),
            ports=tuple(config.ports),
            volumes=tuple(config.volumes),
            volumes_from=tuple(config.volumesFrom),
            args=tuple(config.args),
            command=config.command,
        ),
        tasks=MappingProxyType(
            {
                task.key: TaskDefinition(
                    key=task.key,
                    name=task.name,
                    description=task.description,
                    inputs=_parameters_from(task.inputs),
                    outputs=_parameters_from(task.outputs),
                )
                for task in service.tasks
            }
        ),
        events=MappingProxyType(
            {
                event.key: EventDefinition(
                    key=event.key,
                    name=event.name,
                    description=event.description,
                    data=_parameters_from(event.data),
                )
                for event in service.events
            }
        ),
        dependencies=MappingProxyType(
            {
                dep.key: Dependency(
                    key=dep.key,
                    image=dep.image,
                    volumes=tuple(dep.volumes),
                    volumes_from=tuple(dep.volumesFrom),
                    ports=tuple(dep.ports),
                    command=dep.command,
                    args=tuple(dep.args),
                    env=tuple(dep.env),
                )
                for dep in service.dependencies
            }
        ),
    )


def _configuration(config: Configuration) -> types_service_pb2.Service.Configuration:
    return _Service.Configuration(
        volumes=config.volumes,
        volumesFrom=config.volumes_from,
        ports=config.ports,
        args=config.args,
        command=config.command,
        env=config.env,
    )


def _task(task: TaskDefinition) -> types_service_pb2.Service.Task:
    return _Service.Task(
        key=task.key,
        name=task.name,
        description=task.description,
        inputs=_parameters(task.inputs),
        outputs=_parameters(task.outputs),
    )


def _event(event: EventDefinition) -> types_service_pb2.Service.Event:
    return _Service.Event(
        key=event.key,
        name=event.name,
        description=event.description,
        data=_parameters(event.data),
    )


def _dependency(dep: Dependency) -> types_service_pb2.Service.Dependency:
    return _Service.Dependency(
        key=dep.key,
        image=dep.image,
        volumes=dep.volumes,
        volumesFrom=dep.volumes_from,
        ports=dep.ports,
        command=dep.command,
        args=dep.args,
        env=dep.env,
    )


def _parameters(params: Iterable[Parameter]) -> list[types_service_pb2.Service.Parameter]:
    return [
        _Service.Parameter(
            key=param.key,
            name=param.name,
            description=param.description,
            type=param.type,
            optional=param.optional,
            repeated=param.repeated,
            object=_parameters(param.object),
        )
        for param in params
    ]


def _parameters_from(
    params: Iterable[types_service_pb2.Service.Parameter],
) -> tuple[Parameter, ...]:
    return tuple(
        Parameter(
            key=param.key,
            name=param.name,
            description=param.description,
            type=param.type,
            optional=param.optional,
            repeated=param.repeated,
            object=_parameters_from(param.object),
        )
        for param in params
    )
