"""``python -m mesg_pusher`` runs the service."""

import sys

from mesg_pusher.cli import main

sys.exit(main())
