"""mesg.yml texts both compilers are checked against: the service's and the local engine's."""

from __future__ import annotations

#: Files that are no service definition, and what the message says (the local engine says the same).
MALFORMED = [
    ("name: [unclosed\n", "invalid YAML"),
    ("- a\n- b\n", "the top level: expected a map"),
    ("description: no name\n", '"name" is required'),
    (
        "name: x\ntasks:\n  t:\n    inputs:\n      a: {type: Strin}\n",
        "tasks.t.inputs.a.type: 'Strin' is not one of",
    ),
    (
        "name: x\ntasks:\n  t:\n    inputs:\n      a: {type: String, optional: maybe}\n",
        "tasks.t.inputs.a.optional: expected true or false",
    ),
    ("name: x\ntasks: [a]\n", "tasks: expected a map"),
    ("name: x\nconfiguration:\n  env: PUSHER_APP_ID=\n", "configuration.env: expected a list"),
]


#: Anchors and merge keys (the local engine's compiler is checked against the same file).
ANCHORS = (
    "name: x\n"
    "tasks:\n"
    "  a:\n"
    "    inputs:\n"
    "      <<: &common\n"
    "        one: {type: String}\n"
    "        two: {type: Number}\n"
    "      three: {type: Boolean}\n"
    "    outputs:\n"
    "      out: &out {type: Any}\n"
    "  b:\n"
    "    inputs: {<<: *common, four: {type: Object, object: {x: {type: String}}}}\n"
    "    outputs: {out: *out}\n"
)
