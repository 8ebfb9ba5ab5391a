"""The engine's parameter rules, and the service's own copy of them: the two must agree.

The service checks its outputs (and ``exec`` its inputs) with ``mesg_pusher.definition``, on
decoded Python values; the local engine checks what arrives with ``mesg_local_engine.validation``,
on the ``Struct`` itself. Neither imports the other, so these tests hold them to one behaviour:
the service's own tests pin the texts rule by rule (tests/unit/test_definition.py), and here any
parameter tree and any value get the same reasons from both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mesg_local_engine._proto.mesg.types.service_pb2 import Service
from mesg_local_engine.definition import load_service
from mesg_local_engine.validation import check_data, check_inputs, check_outputs, reasons
from mesg_local_engine.values import dict_to_struct
from mesg_pusher import codec
from mesg_pusher import definition as service_rules

ROOT = Path(__file__).resolve().parents[2]
#: This repository's mesg.yml, as each side reads it.
ENGINE_SIDE = load_service(ROOT / "mesg.yml")
SERVICE_SIDE = service_rules.load_definition(ROOT / "mesg.yml")
KEYS = st.sampled_from(["a", "b", "c"])
TYPES = st.sampled_from(["String", "Number", "Boolean", "Object", "Any", "Date"])


@dataclass(frozen=True)
class Spec:
    """One parameter, built as either side's type."""

    key: str
    type: str
    optional: bool
    repeated: bool
    object: tuple[Spec, ...]

    def engine(self) -> Service.Parameter:
        return Service.Parameter(
            key=self.key,
            type=self.type,
            optional=self.optional,
            repeated=self.repeated,
            object=[child.engine() for child in self.object],
        )

    def service(self) -> service_rules.Parameter:
        return service_rules.Parameter(
            self.key,
            type=self.type,
            optional=self.optional,
            repeated=self.repeated,
            object=tuple(child.service() for child in self.object),
        )


specs = st.recursive(
    st.builds(Spec, KEYS, TYPES, st.booleans(), st.booleans(), st.just(())),
    lambda children: st.builds(
        Spec, KEYS, st.just("Object"), st.booleans(), st.booleans(), st.lists(children, max_size=3).map(tuple)
    ),
    max_leaves=8,
)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.integers(-(2**60), 2**60)
    | st.text(max_size=3),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=12,
)


def both(specs: list[Spec], given: dict[str, Any]) -> tuple[list[str], list[str]]:
    struct = dict_to_struct(given)
    engine = reasons([spec.engine() for spec in specs], struct)
    # The service sees the values as its codec decodes them from the same Struct.
    service = service_rules.validate_parameters(
        [spec.service() for spec in specs],
        codec.struct_to_dict(codec.Struct.FromString(struct.SerializeToString())),
    )
    return engine, service


@settings(max_examples=400, deadline=None)
@given(st.lists(specs, max_size=4), st.dictionaries(KEYS, values, max_size=3))
def test_any_parameters_and_values_get_the_same_reasons(specs: list[Spec], given: dict[str, Any]) -> None:
    engine, service = both(specs, given)
    assert engine == service


def test_a_few_cases_by_hand() -> None:
    """What the property covers, spelled out once: the texts are the engine's."""
    batch = Spec("batch", "Object", False, True, (Spec("channel", "String", False, False, ()),))
    assert both([batch], {"batch": [{"channel": "c"}, {"channel": 1}, {}]}) == (
        ['value of "channel" is not a string'],
        ['value of "channel" is not a string'],
    )
    assert both([Spec("k", "Date", False, False, ())], {"k": 1})[0] == ['value of "k" has an invalid type ']
    assert both([Spec("k", "Number", False, True, ())], {"k": 1})[0] == ['value of "k" is not an array']


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["channel", "name", "data", "port", "useTLS", "batch"]), values, max_size=5
    )
)
def test_this_repository_tasks_get_the_same_messages(given: dict[str, Any]) -> None:
    request, mine = ENGINE_SIDE, SERVICE_SIDE
    struct = dict_to_struct(given)
    decoded = codec.struct_to_dict(codec.Struct.FromString(struct.SerializeToString()))
    for task in request.tasks:
        assert check_inputs("pusher", task, struct) == service_rules.check_task_inputs(
            "pusher", mine.tasks[task.key], decoded
        )
        assert check_outputs("pusher", task, struct) == service_rules.check_task_outputs(
            "pusher", mine.tasks[task.key], decoded
        )
    for event in request.events:
        engine = check_data("pusher", event, struct)
        service = service_rules.check_event_data("pusher", mine.events[event.key], decoded)
        assert (None if engine is None else f"data {engine}") == service
