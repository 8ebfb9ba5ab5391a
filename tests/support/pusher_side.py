"""Real servers for the Pusher-side fault tests: soketi over TLS with a test CA, an HTTP proxy.

- ``TestCA`` makes a CA and server certificates (``cryptography``), written as PEM files.
- ``TLSSoketi`` is soketi serving HTTPS/WSS with such a certificate (``SOKETI_SSL_CERT/KEY``).
- ``HttpProxy`` is proxy.py (PyPI ``proxy.py``, in the dev extras), a real forwarding proxy
  (absolute-form requests and CONNECT) with optional Basic credentials and an access log;
  started on a free loopback port and stopped exactly (its own process group).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.soketi import HOST, Soketi


# -- certificates ------------------------------------------------------------------------------
def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


class TestCA:
    """A throwaway certificate authority; ``issue()`` signs server certificates."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "mesg-pusher test CA") -> None:
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self._name = _name(name)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.pem = directory / "ca.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def context(self) -> ssl.SSLContext:
        """A client context trusting this CA (only)."""
        return ssl.create_default_context(cafile=str(self.pem))

    def issue(self, names: Sequence[str], stem: str) -> tuple[Path, Path]:
        """A server certificate for ``names`` (IP addresses or DNS names); (cert, key) paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_path, key_path = self.directory / f"{stem}.pem", self.directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path


# -- soketi over TLS -----------------------------------------------------------------------------
class TLSSoketi(Soketi):
    """soketi serving HTTPS and WSS on one port with the given certificate."""

    def __init__(self, cert: Path, key: Path, ca: ssl.SSLContext, **options: object) -> None:
        env = {"SOKETI_SSL_CERT": str(cert), "SOKETI_SSL_KEY": str(key)}
        super().__init__(env=env, **options)  # type: ignore[arg-type]
        self.client_context = ca

    @property
    def http_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def ws_url(self, key: str | None = None) -> str:
        return super().ws_url(key).replace("ws://", "wss://", 1)

    def pusher_env(self) -> dict[str, str]:
        return {**super().pusher_env(), "PUSHER_USE_TLS": "true"}

    def _ready_opener(self) -> urllib.request.OpenerDirector:
        # The readiness check over https; the host name is not checked, so a certificate made
        # for another name still counts as ready.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )


# -- an HTTP proxy -------------------------------------------------------------------------------
class HttpProxy:
    """proxy.py on a free loopback port; ``with HttpProxy(auth=("u", "p")) as proxy:``."""

    def __init__(self, auth: tuple[str, str] | None = None, startup_timeout: float = 20.0) -> None:
        self.auth = auth
        self.startup_timeout = startup_timeout
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="http-proxy-")
        self.log_path = Path(self._dir.name) / "access.log"
        self._out = Path(self._dir.name) / "stdout.log"
        self._last_log = ""

    def url(self, user: str | None = None, password: str | None = None) -> str:
        credentials = f"{user}:{password}@" if user is not None else ""
        return f"http://{credentials}{HOST}:{self.port}"

    def log(self) -> str:
        """The proxy's log: one access line per request (``POST host:port/path - 200 OK``)."""
        if self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return self._last_log

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 10.0) -> str:
        """The log once ``text`` shows ``count`` times. proxy.py writes a connection's access
        line when the connection closes, so a kept-alive connection shows up late."""
        deadline = time.monotonic() + timeout
        while (log := self.log()).count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"proxy log never showed {text!r} {count} times:\n{log[-3000:]}")
            time.sleep(0.05)
        return log

    def start(self) -> HttpProxy:
        port_file = Path(self._dir.name) / "port"
        argv = [
            sys.executable,
            "-m",
            "proxy",
            "--hostname",
            HOST,
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--log-file",
            str(self.log_path),
            "--log-level",
            "INFO",
            "--num-workers",
            "1",
            "--num-acceptors",
            "1",
            "--data-dir",
            str(Path(self._dir.name) / "data"),
        ]
        if self.auth is not None:
            argv += ["--basic-auth", f"{self.auth[0]}:{self.auth[1]}"]
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        with self._out.open("ab") as out:
            # Its own session: proxy.py runs worker processes, stopped with it as one group.
            self._proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )  # fmt: skip
        atexit.register(self.stop)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text().strip())
                try:
                    socket.create_connection((HOST, self.port), timeout=0.5).close()
                    return self
                except OSError:
                    pass
            time.sleep(0.05)
        output = self._out.read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"proxy.py did not start:\n{output[-3000:]}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the group of the process this object started
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None:
            # Workers of that group still alive after their parent: end them too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if proc is not None:
            self._last_log = self.log()
            self._dir.cleanup()

    def __enter__(self) -> HttpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
