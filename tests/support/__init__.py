"""What the tests, the demo (tools/demo.py) and the benchmarks (benchmarks/) share; it ships nowhere.

- ``checkout``: the repository root and what is found in it (mesg.yml, node_modules);
- ``soketi``: a real local Pusher server; ``relay``: a TCP relay (delay, drop, silence);
  ``pusher_ws``: a Pusher WebSocket subscriber; ``pusher_api``: a checking Pusher API server;
- ``processes``: the local engine and the service as child processes; ``measure``: their CPU,
  memory and sockets; ``progress``: a counter on a terminal;
- ``installed``: the service's (or the local engine's) wheel alone in a fresh venv;
- ``stack``, ``fixtures``, ``e2e``, ``container``, ``image``: the end-to-end stack, pytest
  fixtures, helpers, and the service started from its container image.
"""
