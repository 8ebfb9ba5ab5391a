"""``mesg-pusher exec TASK [--input key=value ...] [--json FILE|-]``: one task, no engine.

For trying credentials and for scripts: the outputs are printed as JSON on stdout; a failed
task prints its error on stderr, as an execution would carry it (its code first, see
docs/errors.md), and exits 1; a usage error exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from mesg_pusher.commands.direct import TaskFailed, run_task
from mesg_pusher.config import PusherSettings, merged_environment
from mesg_pusher.definition import TaskDefinition, load_definition
from mesg_pusher.errors import ConfigError
from mesg_pusher.logs import configure_logging, log_format

EPILOG = """\
A value given with --input is taken as text for a String input, and as JSON for any other
(Number, Boolean, Object, Any, or a list), falling back to text when it is not JSON:
  mesg-pusher exec trigger --input channel=news --input name=update --input 'data={"n": 1}'
  echo '{"filter_by_prefix": "presence-"}' | mesg-pusher exec channels --json -
--input values override the same keys from --json. Settings come from the environment and
.env as for the service (PUSHER_APP_ID, PUSHER_APP_KEY, PUSHER_APP_SECRET, PUSHER_CLUSTER...).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mesg-pusher exec",
        description="Run one task directly against Pusher, with the service's validation and settings.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", help="task key, e.g. trigger, channels (see mesg.yml)")
    parser.add_argument(
        "--input", action="append", default=[], metavar="KEY=VALUE", help="one input (repeatable)"
    )
    parser.add_argument("--json", metavar="FILE", help="a JSON object of inputs; - reads stdin")
    return parser


def parse_value(task: TaskDefinition, key: str, text: str) -> Any:
    """Text for a String input; JSON, else text, for anything else (or an undeclared key)."""
    declared = next((p for p in task.inputs if p.key == key), None)
    if declared is not None and declared.type == "String" and not declared.repeated:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def gather_inputs(
    parser: argparse.ArgumentParser, args: argparse.Namespace, task: TaskDefinition
) -> dict[str, Any]:
    """--json's object overlaid by each --input; a malformed one is a usage error (exit 2)."""
    inputs: dict[str, Any] = {}
    if args.json is not None:
        try:
            text = sys.stdin.read() if args.json == "-" else Path(args.json).read_text()
            loaded = json.loads(text)
        except OSError as exc:
            parser.error(f"--json {args.json}: {exc.strerror or exc}")
        except ValueError as exc:
            parser.error(f"--json {args.json}: not JSON ({exc})")
        if not isinstance(loaded, dict):
            parser.error(
                f"--json {args.json}: must hold a JSON object of inputs, not {type(loaded).__name__}"
            )
        inputs.update(loaded)
    for item in args.input:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"--input {item!r}: expected KEY=VALUE")
        inputs[key.strip()] = parse_value(task, key.strip(), text)
    return inputs


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    environment = merged_environment()
    try:
        fmt = log_format(environment)
        settings = PusherSettings(environment)
        service = load_definition()
    except ConfigError as exc:
        print(f"mesg-pusher exec: {exc}", file=sys.stderr)
        return 1
    task = service.tasks.get(args.task)
    if task is None:
        parser.error(f"unknown task {args.task!r}; this service has: {', '.join(service.tasks)}")
    inputs = gather_inputs(parser, args, task)
    # Warnings (retries, a proxy's trouble) go to stderr, masked; stdout holds only the outputs.
    configure_logging("WARNING", settings.secrets, fmt)
    try:
        outputs = asyncio.run(run_task(args.task, inputs, settings, service))
    except TaskFailed as exc:
        print(f"mesg-pusher exec: {args.task} failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(outputs, ensure_ascii=False, indent=2 if sys.stdout.isatty() else None))
    return 0
