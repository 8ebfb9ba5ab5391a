"""``python -m mesg_local_engine --port 50052 [--mesg-yml PATH] [--run-service CMD...]``."""

import sys

from mesg_local_engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
