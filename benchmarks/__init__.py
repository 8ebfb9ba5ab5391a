"""The benchmarks: run from the repository root, e.g. ``.venv/bin/python -m benchmarks.bench``.

``bench`` measures the service against its floor and ceiling (``floor``, ``ceiling``: service
processes of their own) and an original-style JavaScript baseline (``original_service.js``);
``bench_metrics`` measures what ``MESG_PUSHER_METRICS_PORT`` costs. They use the tests' support
package (soketi, the processes, the relay, the WebSocket subscriber) and the local engine.
"""
