"""Entry point: ``python -m mesg_pusher.local_engine --port 50052 [--run-service CMD...]``."""

import sys

from mesg_pusher.local_engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
