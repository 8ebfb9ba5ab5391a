"""The service's container image as buildah stores it: its run configuration, its size, its files.

No container runtime works in this sandbox (podman's crun may not set rlimits here), so a
"container" is the image's root filesystem, mounted by buildah, entered with chroot as the
image's user, in its working directory, with its environment: what a runtime does, minus the
namespaces and cgroups, which change nothing the tests look at. Standard library only:
``scripts/image`` runs ``python3 -m tests.support.image size`` before any virtualenv exists.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: What scripts/image builds and tags, and the stand-in for the Dockerfile's FROM.
DEFAULT_IMAGE = "localhost/mesg-pusher:test"
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
#: The variables the engine gives a service; nothing else of the host reaches the container.
ENGINE_PREFIXES = ("MESG_", "PUSHER_", "LOG_")

BUILDAH = ("buildah", "--storage-driver", "vfs")


def buildah(*args: str) -> str:
    """Run buildah on the same (vfs) storage scripts/image built into; its stdout."""
    done = subprocess.run([*BUILDAH, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def inspect(image: str) -> dict[str, Any]:
    """``buildah inspect`` of an image (its OCI configuration and manifest)."""
    data: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", image))
    return data


@dataclass(frozen=True)
class RunConfig:
    """How a runtime starts the image: the fields of its OCI configuration that matter."""

    user: str
    env: dict[str, str]
    argv: list[str]  # ENTRYPOINT followed by CMD, as a runtime joins them
    workdir: str

    @classmethod
    def of(cls, image: str) -> RunConfig:
        config = inspect(image)["OCIv1"].get("config", {})
        env = dict(item.split("=", 1) for item in config.get("Env") or [])
        argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        return cls(config.get("User") or "", env, argv, config.get("WorkingDir") or "/")


def layer_sizes(image: str) -> dict[str, int]:
    """Uncompressed size of each layer, by digest, from the image's manifest."""
    manifest = json.loads(inspect(image)["Manifest"])
    return {layer["digest"]: int(layer["size"]) for layer in manifest["layers"]}


def added_size(image: str = DEFAULT_IMAGE, base: str = BASE_IMAGE) -> int:
    """Bytes the image's own layers add on top of the base's layers."""
    base_layers = layer_sizes(base)
    return sum(size for digest, size in layer_sizes(image).items() if digest not in base_layers)


class MountedImage:
    """A working container of the image, mounted; removed at exit (or by ``remove``)."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.config = RunConfig.of(image)
        self.name = f"mesg-pusher-test-{uuid.uuid4().hex[:8]}"
        buildah("from", "--pull-never", "--name", self.name, image)
        try:
            self.rootfs = Path(buildah("mount", self.name).strip())
        except Exception:
            buildah("rm", self.name)
            raise
        atexit.register(self.remove)

    def remove(self) -> None:
        """Unmount and delete the working container (the image stays)."""
        if self.name:
            name, self.name = self.name, ""
            subprocess.run([*BUILDAH, "umount", name], capture_output=True, check=False)
            subprocess.run([*BUILDAH, "rm", name], capture_output=True, check=False)
            atexit.unregister(self.remove)

    def ids(self) -> tuple[int, int]:
        """The image's USER as numeric uid and gid; names are looked up in the image's own files."""
        user, _, group = self.config.user.partition(":")
        uid, primary = self._lookup("passwd", user or "0")
        return uid, primary if not group else self._lookup("group", group)[0]

    def _lookup(self, table: str, name: str) -> tuple[int, int]:
        """(id, primary group) of a name in /etc/passwd or /etc/group; a number stands for itself."""
        if name.isdigit():
            return int(name), int(name)
        for line in (self.rootfs / "etc" / table).read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2]), int(fields[3] if table == "passwd" else fields[2])
        raise LookupError(f"{name!r} is not in the image's /etc/{table}")

    def run_argv(self, argv: Sequence[str] | None = None) -> list[str]:
        """The command that starts ``argv`` (default: ENTRYPOINT + CMD) as a runtime would.

        In a mount namespace of its own (gone with the process, nothing to clean up), /proc and
        /dev are mounted into the root as a runtime mounts them; chroot then switches to the
        image's user (numeric, no supplementary groups) and the image's own ``env --chdir``
        enters WORKDIR, since chroot always starts at ``/``. Every step execs the next, so the
        process started is the service itself: its PID gets the signals. The network is the
        host's (loopback), as with ``--network host``.
        """
        uid, gid = self.ids()
        command = list(argv if argv is not None else self.config.argv)
        root = str(self.rootfs)
        enter = 'r=$1; shift; mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" && exec "$@"'
        return [
            "/usr/bin/unshare", "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", enter, "sh", root,
            "/usr/sbin/chroot", f"--userspec={uid}:{gid}", "--groups=", root,
            "env", f"--chdir={self.config.workdir}", *command,
        ]  # fmt: skip

    def run_env(self, variables: Mapping[str, str]) -> dict[str, str]:
        """The image's ENV, then the engine's variables (MESG_*, PUSHER_*, LOG_*) from ``variables``."""
        given = {k: v for k, v in variables.items() if k.startswith(ENGINE_PREFIXES)}
        return {**self.config.env, **given}


_mounted: dict[str, MountedImage] = {}


def mounted(image: str) -> MountedImage:
    """One mounted working container per image for the whole test session.

    A runtime gives each run a fresh copy of the image; sharing one is equivalent here because
    the service writes nothing (its user owns no file in the image).
    """
    if image not in _mounted:
        _mounted[image] = MountedImage(image)
    return _mounted[image]


def main(args: Sequence[str]) -> int:
    """``python -m tests.support.image size [IMAGE [BASE]]``: print the sizes scripts/image reports."""
    if not args or args[0] != "size":
        print("usage: python -m tests.support.image size [IMAGE [BASE]]", file=sys.stderr)
        return 2
    image = args[1] if len(args) > 1 else DEFAULT_IMAGE
    base = args[2] if len(args) > 2 else BASE_IMAGE
    total, base_total = sum(layer_sizes(image).values()), sum(layer_sizes(base).values())
    print(
        f"size: image {total / 1e6:.1f} MB, base {base_total / 1e6:.1f} MB, "
        f"added by the project {added_size(image, base) / 1e6:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
