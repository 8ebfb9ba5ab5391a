"""The service's mesg.yml loading and its own copy of the engine's parameter rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mesg_pusher
from mesg_pusher.definition import (
    EventDefinition,
    Parameter,
    ServiceDefinition,
    TaskDefinition,
    check_event_data,
    check_task_inputs,
    check_task_outputs,
    load_definition,
    locate_definition,
    validate_parameters,
)
from tests.support.definitions import ANCHORS, MALFORMED

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = ("trigger", "triggerBatch", "channels", "channel")
CONNECTION = ["appId", "key", "secret", "useTLS", "cluster", "host", "port", "proxy", "timeout", "keepAlive"]

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def definition() -> ServiceDefinition:
    return load_definition(ROOT / "mesg.yml")


# --- loading ---------------------------------------------------------------------------------


def test_mesg_yml_has_the_service_identity(definition: ServiceDefinition) -> None:
    assert definition.name == "pusher"
    assert definition.sid == "com.mesg.pusher"
    assert definition.repository == ""  # no public repository yet: none is named
    assert definition.dependencies == {}


def test_mesg_yml_env_defaults_are_empty(definition: ServiceDefinition) -> None:
    env = definition.configuration.env
    assert env[0] == "PUSHER_APP_ID="
    assert all(item.startswith("PUSHER_") and item.endswith("=") for item in env)


def test_mesg_yml_starts_with_the_four_original_tasks(definition: ServiceDefinition) -> None:
    assert list(definition.tasks)[:4] == ["trigger", "triggerBatch", "channels", "channel"]
    for key, task in definition.tasks.items():
        assert task.key == key
        assert task.name and task.description
    for key, event in definition.events.items():
        assert event.key == key
        assert event.data


def test_the_original_tasks_accept_the_merged_connection_inputs(
    definition: ServiceDefinition,
) -> None:
    for key in ORIGINAL:
        keys = [param.key for param in definition.tasks[key].inputs]
        assert keys[: len(CONNECTION)] == CONNECTION
        params = {param.key: param for param in definition.tasks[key].inputs}
        assert all(params[name].optional for name in CONNECTION)
        assert params["port"].type == "Number"
        assert params["useTLS"].type == "Boolean"


def test_original_task_inputs_and_outputs(definition: ServiceDefinition) -> None:
    def params(task: str, which: str) -> dict[str, Parameter]:
        return {param.key: param for param in getattr(definition.tasks[task], which)}

    def shape(param: Parameter) -> tuple[str, bool, bool]:
        return (param.type, param.optional, param.repeated)

    trigger = params("trigger", "inputs")
    assert shape(trigger["name"]) == ("String", False, False)
    assert shape(trigger["data"]) == ("Any", False, False)
    assert shape(trigger["channel"]) == ("String", True, False)
    assert shape(trigger["channels"]) == ("String", True, True)
    assert shape(trigger["socket_id"]) == ("String", True, False)
    assert shape(params("trigger", "outputs")["message"]) == ("String", False, False)
    assert shape(params("triggerBatch", "inputs")["batch"]) == ("Object", False, True)
    assert shape(params("triggerBatch", "outputs")["message"]) == ("String", False, False)
    assert shape(params("channels", "inputs")["params"]) == ("Object", True, False)
    assert shape(params("channels", "outputs")["channels"]) == ("String", False, True)
    assert shape(params("channels", "outputs")["info"]) == ("Object", True, False)
    channel = params("channel", "inputs")
    assert shape(channel["channel"]) == shape(channel["name"]) == ("String", True, False)
    outputs = params("channel", "outputs")
    assert shape(outputs["occupied"]) == ("Boolean", False, False)
    assert (
        shape(outputs["user_count"])
        == shape(outputs["subscription_count"])
        == (
            "Number",
            True,
            False,
        )
    )


def test_nested_object_parameters(definition: ServiceDefinition) -> None:
    batch = {param.key: param for param in definition.tasks["triggerBatch"].inputs}["batch"]
    fields = {param.key: param for param in batch.object}
    assert [key for key in fields if key in ("channel", "name", "data", "socket_id")] == [
        "channel",
        "name",
        "data",
        "socket_id",
    ]
    assert fields["data"].type == "Any"
    assert fields["socket_id"].optional and not fields["channel"].optional


def test_definition_is_immutable(definition: ServiceDefinition) -> None:
    with pytest.raises(TypeError):
        definition.tasks["x"] = definition.tasks["trigger"]  # type: ignore[index]


def test_locate_prefers_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "mesg.yml").write_text("name: other\n")
    assert locate_definition(tmp_path) == tmp_path / "mesg.yml"
    assert load_definition(locate_definition(tmp_path)).name == "other"


def test_locate_falls_back_to_the_packaged_copy(tmp_path: Path) -> None:
    located = locate_definition(tmp_path)
    assert located == Path(mesg_pusher.__file__).with_name("mesg.yml")
    assert located.is_file()
    assert load_definition(located).sid == "com.mesg.pusher"


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_files_raise_value_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mesg.yml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"mesg\.yml") as info:
        load_definition(path)
    assert message in str(info.value)


def test_anchors_and_merge_keys_keep_file_order(tmp_path: Path) -> None:
    path = tmp_path / "mesg.yml"
    path.write_text(ANCHORS)
    tasks = load_definition(path).tasks
    assert [p.key for p in tasks["a"].inputs] == ["one", "two", "three"]
    assert [p.key for p in tasks["b"].inputs] == ["one", "two", "four"]
    assert tasks["b"].inputs[2].object == (Parameter("x", type="String"),)
    assert tasks["b"].outputs == tasks["a"].outputs


# --- validation ------------------------------------------------------------------------------


def reasons(param: Parameter, values: dict[str, object]) -> list[str]:
    return validate_parameters([param], values)


@pytest.mark.parametrize(
    ("kind", "good", "bad", "word"),
    [
        ("String", "x", 1.0, "a string"),
        ("Number", 1.5, "1", "a number"),
        ("Number", 3, True, "a number"),
        ("Boolean", False, 0.0, "a boolean"),
        ("Object", {"a": 1}, [1], "an object"),
    ],
)
def test_type_mismatch_messages(kind: str, good: object, bad: object, word: str) -> None:
    param = Parameter("k", type=kind)
    assert reasons(param, {"k": good}) == []
    assert reasons(param, {"k": bad}) == [f'value of "k" is not {word}']


def test_any_accepts_anything_present() -> None:
    param = Parameter("k", type="Any")
    for value in ("s", 1.0, True, {"a": None}, [1, "x"]):
        assert reasons(param, {"k": value}) == []


def test_missing_and_none_are_required_unless_optional() -> None:
    assert reasons(Parameter("k"), {}) == ['value of "k" is required']
    assert reasons(Parameter("k"), {"k": None}) == ['value of "k" is required']
    assert reasons(Parameter("k", type="Any"), {}) == ['value of "k" is required']
    assert reasons(Parameter("k", optional=True), {}) == []
    assert reasons(Parameter("k", optional=True), {"k": None}) == []
    assert reasons(Parameter("k", optional=True), {"k": 1.0}) == ['value of "k" is not a string']


def test_extra_keys_pass() -> None:
    assert validate_parameters([Parameter("k")], {"k": "v", "other": object()}) == []
    assert validate_parameters([], {"anything": 1}) == []


def test_repeated_needs_an_array_and_checks_items() -> None:
    param = Parameter("k", type="String", repeated=True)
    assert reasons(param, {"k": []}) == []
    assert reasons(param, {"k": ["a", "b"]}) == []
    assert reasons(param, {"k": "a"}) == ['value of "k" is not an array']
    assert reasons(param, {"k": {"a": 1}}) == ['value of "k" is not an array']
    # the engine stops at the first bad item
    assert reasons(param, {"k": ["a", 1.0, True]}) == ['value of "k" is not a string']
    assert reasons(param, {"k": ["a", None]}) == ['value of "k" is not a string']


def test_objects_are_validated_recursively() -> None:
    param = Parameter(
        "batch",
        type="Object",
        repeated=True,
        object=(Parameter("channel"), Parameter("data", type="Any"), Parameter("socket_id", optional=True)),
    )
    good = {"channel": "c", "data": {"x": 1}}
    assert reasons(param, {"batch": [good, {**good, "socket_id": "1.2"}]}) == []
    assert reasons(param, {"batch": [good, {"channel": 1.0}]}) == [
        'value of "channel" is not a string',
        'value of "data" is required',
    ]
    assert reasons(param, {"batch": [good, "x"]}) == ['value of "batch" is not an object']


def test_reasons_come_in_parameter_order() -> None:
    params = [Parameter("b", type="Number"), Parameter("a"), Parameter("c", type="Boolean")]
    assert validate_parameters(params, {"c": "yes", "b": "1"}) == [
        'value of "b" is not a number',
        'value of "a" is required',
        'value of "c" is not a boolean',
    ]


def test_unknown_type_uses_the_engine_text() -> None:
    assert reasons(Parameter("k", type="Date"), {"k": "x"}) == ['value of "k" has an invalid type ']


@given(json_values)
def test_string_accepts_exactly_strings(value: object) -> None:
    result = reasons(Parameter("k"), {"k": value})
    if value is None:
        assert result == ['value of "k" is required']
    elif isinstance(value, str):
        assert result == []
    else:
        assert result == ['value of "k" is not a string']


@given(json_values)
def test_number_accepts_exactly_non_bool_numbers(value: object) -> None:
    result = reasons(Parameter("k", type="Number", optional=True), {"k": value})
    number = isinstance(value, int | float) and not isinstance(value, bool)
    assert result == ([] if value is None or number else ['value of "k" is not a number'])


TASK = TaskDefinition(
    "trigger",
    inputs=(
        Parameter("name"),
        Parameter("port", type="Number", optional=True),
        Parameter("data", type="Any"),
    ),
    outputs=(Parameter("occupied", type="Boolean"), Parameter("user_count", type="Number", optional=True)),
)


def test_check_task_inputs_message() -> None:
    assert check_task_inputs("pusher", TASK, {"name": "e", "data": "d"}) is None
    assert check_task_inputs("pusher", TASK, {"name": "e", "port": "80"}) == (
        'service "pusher" - inputs of task "trigger" are invalid: '
        'value of "port" is not a number\nvalue of "data" is required'
    )


def test_check_task_outputs_message() -> None:
    assert check_task_outputs("pusher", TASK, {"occupied": True, "user_count": 3}) is None
    assert check_task_outputs("pusher", TASK, {"occupied": "yes"}) == (
        'service "pusher" - outputs of task "trigger" are invalid: value of "occupied" is not a boolean'
    )


def test_check_event_data_message() -> None:
    event = EventDefinition("started", data=(Parameter("at", type="Number"),))
    assert check_event_data("pusher", event, {"at": 1.0}) is None
    assert check_event_data("pusher", event, {}) == (
        'data service "pusher" - data of event "started" are invalid: value of "at" is required'
    )
