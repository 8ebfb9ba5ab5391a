"""The service started from its container image instead of from this checkout.

Set ``MESG_PUSHER_TEST_IMAGE`` (``scripts/image`` builds ``localhost/mesg-pusher:test``) and every
stack the tests start (tests/support/stack.py) runs the image's ENTRYPOINT + CMD as its USER, in
its WORKDIR, with its ENV plus the engine's MESG_* and PUSHER_* variables: the end-to-end suite
then tests what a MESG deployment runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from tests.support.image import MountedImage, mounted
from tests.support.processes import EngineProcess, ServiceProcess

IMAGE_VARIABLE = "MESG_PUSHER_TEST_IMAGE"


class ContainerService(ServiceProcess):
    """ServiceProcess, but the process is the image's command in its mounted root filesystem."""

    def __init__(
        self, engine: EngineProcess, image: str, env: Mapping[str, str] | None = None, runner: int = 0
    ) -> None:
        super().__init__(engine, env=env, runner=runner)
        self.container: MountedImage = mounted(image)
        self.argv = self.container.run_argv()
        self.env = self.container.run_env(self.env)


def service_factory() -> Callable[..., ServiceProcess]:
    """How to start the service: from the image named by MESG_PUSHER_TEST_IMAGE, else from source.

    Called as ``factory(engine, env=..., runner=...)`` by ``start_services``, once per runner.
    """
    image = os.environ.get(IMAGE_VARIABLE)
    if not image:
        return ServiceProcess
    return lambda engine, env=None, runner=0: ContainerService(engine, image, env, runner)
