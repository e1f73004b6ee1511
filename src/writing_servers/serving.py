"""Section "Using the Protocol": a factory serves a protocol on whatever endpoint you listen on.

A protocol says what to do on one connection; to run it you need a
*factory* (which builds one protocol per connection) and a place to listen.

* :class:`QOTDFactory` is the howto's factory: its ``buildProtocol`` returns
  a fresh :class:`~writing_servers.protocols.QOTD` for every connection.
* :func:`main` is the complete standalone program the howto only sketches:
  listen on an endpoint, then hand control to ``reactor.run()``.  Run it with
  ``python -m writing_servers.serving --port 8007``.
* :func:`make_self_signed_certificate` writes a key and a certificate, so the
  very same factory can be served over TLS as well as TCP and UNIX sockets.
* :func:`why_no_unix_sockets` says when this machine has no UNIX sockets
  (Windows), so that a cell can say so and skip them; :func:`first_line`
  waits a bounded time for a program's first line of output on any system.

Importing this module starts nothing: the reactor is imported inside
:func:`main`, the only function that runs it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import queue
import socket
import sys
import threading
from collections.abc import Sequence
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.interfaces import IAddress, IReactorUNIX
from twisted.internet.protocol import Factory

from writing_servers.programs import run_server, server_arguments
from writing_servers.protocols import QOTD

__all__ = ["QOTD", "QOTDFactory", "first_line", "main", "make_self_signed_certificate", "why_no_unix_sockets"]


class QOTDFactory(Factory):
    """Build a new QOTD protocol for every connection."""

    def buildProtocol(self, addr: IAddress) -> QOTD:
        return QOTD()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve QOTD over TCP until interrupted; return the exit status.

    ``--port 0`` asks the system for any free port; the line printed once
    listening says which one it got.
    """
    parser = server_arguments("Serve the quote of the day (RFC 865) over TCP.", default_port=8007)
    args = parser.parse_args(argv)
    return run_server(QOTDFactory(), "QOTD", args.port, args.interface)


def make_self_signed_certificate(
    directory: str | os.PathLike[str], hostname: str = "localhost"
) -> tuple[str, str]:
    """Write a new private key and a certificate for *hostname* and 127.0.0.1 into *directory*.

    The certificate is self-signed: it names itself as its own issuer, so
    no authority vouches for it, and a client must be told to trust this
    very certificate (``ssl.create_default_context(cafile=...)``).  It is
    valid for one day.  Returns ``(certificate_path, key_path)``, both PEM.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)  # issuer == subject: that is what "self-signed" means
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate a clock a little behind
        .not_valid_after(now + datetime.timedelta(days=1))
        # Clients check the name they dialled against this list, not against the common name.
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        # A server's certificate, not an authority that signs others; strict verifiers check these.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, f"{hostname}.crt")
    key_path = os.path.join(directory, f"{hostname}.key")
    with open(cert_path, "wb") as file:
        file.write(certificate.public_bytes(serialization.Encoding.PEM))
    # The key is the secret half: create the file readable by its owner only.
    with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
        file.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


def why_no_unix_sockets(reactor: object) -> str | None:
    """Why *reactor* cannot serve a UNIX socket on this machine; None when it can (Linux, macOS)."""
    if not hasattr(socket, "AF_UNIX"):  # Python on Windows
        return f"Python has no UNIX sockets on this system ({sys.platform})"
    if not IReactorUNIX.providedBy(reactor):
        return f"this reactor ({type(reactor).__name__}) cannot listen on UNIX sockets"
    return None


def first_line(stream: IO[str], timeout: float) -> str:
    """The first line *stream* gives within *timeout* seconds, or "" if none came by then (or it ended).

    A thread reads it, because Windows cannot ``select()`` on a pipe; a line
    that arrives after the timeout is read by that thread and lost.
    """
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), name="first-line", daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


if __name__ == "__main__":
    sys.exit(main())
