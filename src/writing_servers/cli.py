"""The course's command line: run any of its servers for real, in the foreground.

``writing-servers serve NAME`` listens with one of the section modules'
factories on Twisted's real reactor (not the notebooks' background one) until
Ctrl-C or SIGTERM, so that telnet, nc or a whole class can talk to it.
``writing-servers list`` names the servers and the programs to copy;
``writing-servers export NAME`` writes one of those programs into the
current folder.  ``python -m writing_servers`` is the same command.

The registry, :data:`SERVERS`, is plain data: a name, the notebook that
teaches the server, one line about it, and a function from the parsed
options to a factory.  Adding a server is adding an entry.

Importing this module touches no reactor: :func:`main` imports it, and only
to serve.  Nothing here uses the notebooks' runtime or clients.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import Factory
from twisted.logger import globalLogBeginner
from twisted.python.failure import Failure

from writing_servers import (
    closing,
    exports,
    grading,
    helper_protocols,
    protocols,
    serving,
    simpler_protocol_creation,
    startup_shutdown,
    state_machines,
    terminals,
)

__all__ = ["DEFAULT_HOST", "DEFAULT_LOG", "DEFAULT_PORT", "SERVERS", "Server", "main"]

#: Loopback: only this machine can connect unless the operator says otherwise.
DEFAULT_HOST = "127.0.0.1"
#: One port for every server, above 1024 so that no privileges are needed.
DEFAULT_PORT = 8000
#: Where ``serve logfile`` appends lines unless ``--log`` names another file.
DEFAULT_LOG = "writing-servers.log"


class Server(NamedTuple):
    """One server of the course, as the command line knows it."""

    notebook: int
    description: str
    build: Callable[[argparse.Namespace], IProtocolFactory]
    #: What to type or run once connected; {host}, {port} and {log} are filled in.
    try_it: str
    #: False for servers that frame messages by length: a program must talk to them.
    terminal: bool = True
    #: The options besides --host and --port that this server uses.
    options: tuple[str, ...] = ()


# The one-shot examples use `nc -w 1` (give up after 1 s of quiet) so that nc exits once the server
# has answered; `nc -N` works too: every server here sends its reply before closing on a half-close.
SERVERS: dict[str, Server] = {
    "echo": Server(
        1,
        "writes back every byte it receives",
        lambda args: Factory.forProtocol(protocols.Echo),
        "type a line: it comes straight back.",
    ),
    "qotd": Server(
        1,
        "sends a quote of the day (RFC 865), then hangs up",
        lambda args: serving.QOTDFactory(),
        "nothing to type: the quote arrives and the server hangs up.",
    ),
    "counting-echo": Server(
        1,
        "an echo that greets you with the number of open connections",
        lambda args: protocols.CountingEchoFactory(),
        "connect from two terminals: the second greeting counts two.",
    ),
    "big-reply": Server(
        2,
        "answers 'lose' or 'abort' with 8 MiB, then hangs up that way",
        lambda args: closing.BigReplyFactory(),
        "8 MiB floods a terminal, so count it: printf 'lose\\n' | nc -w 1 {host} {port} | wc -c",
    ),
    "countdown": Server(
        2,
        "counts down through a producer and closes once the producer is done",
        lambda args: closing.CountdownFactory(),
        "nothing to type: 3, 2, 1, liftoff!, then the server hangs up.",
    ),
    "bytes-answer": Server(
        4,
        "the howto's Answer with bytes: only CRLF ends a line (nc's LF does not)",
        lambda args: Factory.forProtocol(helper_protocols.BytesAnswer),
        "type How are you? in telnet (CRLF: answered) and in nc (LF: no answer).",
    ),
    "answer": Server(
        4,
        "answers 'How are you?' line by line, ended by CRLF or LF",
        lambda args: Factory.forProtocol(helper_protocols.Answer),
        "type How are you?",
    ),
    "upload": Server(
        4,
        "lines, except that 'SEND n' is followed by n raw bytes; 'TOTAL' sums them",
        lambda args: Factory.forProtocol(helper_protocols.Upload),
        "printf 'SEND 5\\nhelloTOTAL\\n' | nc -w 1 {host} {port}",
    ),
    "netstring": Server(
        4,
        "answers questions sent as netstrings (12:How are you?,)",
        lambda args: Factory.forProtocol(helper_protocols.NetstringAnswer),
        "printf '12:How are you?,' | nc -w 1 {host} {port}",
        terminal=False,
    ),
    "int32": Server(
        4,
        "answers questions after a 4-byte big-endian length",
        lambda args: Factory.forProtocol(helper_protocols.Int32Answer),
        "printf '\\0\\0\\0\\14How are you?' | nc -w 1 {host} {port} | od -c",
        terminal=False,
    ),
    "line-chat": Server(
        5,
        "the state-machine chat: pick a name, then talk to everyone",
        lambda args: state_machines.ChatFactory(terminals.ClassroomChatRoom(), state_machines.LineChat),
        "connect from two terminals, pick a name in each, then talk.",
    ),
    "json-chat": Server(
        5,
        "the same chat room for programs: one JSON object per line",
        lambda args: state_machines.ChatFactory(terminals.ClassroomChatRoom(), state_machines.JsonChat),
        'type {"join": "ann"}, then {"say": "hello"} or {"who": ""}',
    ),
    "quote": Server(
        6,
        "sends the quote given with --quote, then hangs up",
        lambda args: simpler_protocol_creation.ConfigurableQOTDFactory(args.quote),
        "nothing to type: the quote arrives and the server hangs up.",
        options=("quote",),
    ),
    "logfile": Server(
        7,
        "appends every line you send to the file given with --log",
        lambda args: startup_shutdown.LogfileFactory(os.path.abspath(args.log)),
        "type lines: nothing comes back, and each line is appended to {log}",
        options=("log",),
    ),
    "chat": Server(
        8,
        "the chat server: pick a name, then talk to everyone",
        lambda args: terminals.ClassroomChatFactory(),
        "connect from two terminals (or a whole class), pick a name in each, then talk.",
    ),
}

#: What an option is when the operator does not give it.
OPTION_DEFAULTS = {"log": DEFAULT_LOG, "quote": simpler_protocol_creation.DEFAULT_QUOTE}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with *argv* (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            return list_servers()
        if args.command == "export":
            return export_program(args)
        if args.command == "grade":
            return grade_submissions(args)
        if args.command == "nbgrader-source":
            return write_nbgrader_sources(args)
        return serve(args)
    except KeyboardInterrupt:  # Ctrl-C before the reactor took over SIGINT
        print("Interrupted.", file=sys.stderr, flush=True)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``writing-servers list`` and ``writing-servers serve NAME``."""
    parser = argparse.ArgumentParser(
        prog="writing-servers",  # not "__main__.py" under python -m
        description="Run the servers of the course for real, to talk to with telnet, nc or your own programs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="name every server and every program to copy, with its notebook")
    export_parser = commands.add_parser(
        "export",
        help="write one of the course's programs into a folder, to run or copy",
        description="Write one of the course's standalone programs (it needs only Twisted) into a folder.",
        epilog="programs: " + ", ".join(exports.programs()),
    )
    export_parser.add_argument("name", metavar="NAME", help="which program (writing-servers list names them)")
    export_parser.add_argument(
        "--to", metavar="FOLDER", default=".", help="where to write it (default: the current folder)"
    )
    export_parser.add_argument("--force", action="store_true", help="write over a file of the same name")
    grade_parser = commands.add_parser(
        "grade",
        help="grade students' notebooks: run each in a fresh kernel, then every exercise check",
        description="Run each submitted notebook in a kernel of its own, run its exercise checks, and print "
        "a table of students × exercises (✓, or the first ✗ line); also written as CSV.",
    )
    grade_parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="notebooks, or folders of them"
    )
    grade_parser.add_argument(
        "--time-limit",
        type=float,
        default=grading.DEFAULT_TIME_LIMIT,
        metavar="SECONDS",
        help="how long one submission's cells may run (default: %(default)g)",
    )
    grade_parser.add_argument(
        "--csv",
        type=Path,
        default=Path("grades.csv"),
        metavar="FILE",
        help="where to write the table (default: %(default)s)",
    )
    nbgrader_parser = commands.add_parser(
        "nbgrader-source",
        help="write course notebooks as nbgrader source notebooks (each check cell an autograder test)",
        description="Write each notebook with its check cells made nbgrader autograder tests, one point each.",
    )
    nbgrader_parser.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK")
    nbgrader_parser.add_argument("--to", type=Path, required=True, metavar="FOLDER", help="e.g. source/ps1")
    nbgrader_parser.add_argument("--force", action="store_true", help="write over notebooks already there")
    serve_parser = commands.add_parser(
        "serve",
        help="run one server in the foreground until Ctrl-C",
        description="Run one server in the foreground on Twisted's reactor until Ctrl-C or SIGTERM.",
        epilog="servers: " + ", ".join(SERVERS),
    )
    serve_parser.add_argument("name", metavar="NAME", help="which server (writing-servers list names them)")
    serve_parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0: everyone on the network)",
    )
    serve_parser.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help="TCP port (default: %(default)s; 0 picks a free one)",
    )
    serve_parser.add_argument(
        "--quiet",
        action="store_true",
        help="print no line per connection, join or leave (cut-offs and errors are still printed)",
    )
    serve_parser.add_argument(
        "--log",
        metavar="FILE",
        help=f"logfile only: the file lines are appended to (default: {DEFAULT_LOG} in the current directory)",
    )
    serve_parser.add_argument(
        "--quote",
        help=f"quote only: the quote to send (default: {simpler_protocol_creation.DEFAULT_QUOTE!r})",
    )
    return parser


def grade_submissions(args: argparse.Namespace) -> int:
    """Grade every notebook under *args.paths*; print the table and write the CSV."""
    try:
        submissions = grading.find_submissions(args.paths)
    except FileNotFoundError as error:
        print(f"writing-servers grade: {error}", file=sys.stderr)
        return 2
    if not submissions:
        print("writing-servers grade: no notebooks (.ipynb) found there", file=sys.stderr)
        return 2
    grades = []
    for number, (student, path) in enumerate(submissions, 1):
        print(f"[{number}/{len(submissions)}] {student}: {path}", file=sys.stderr, flush=True)
        grades += grading.grade_all([(student, path)], args.time_limit)
    print(grading.table(grades))
    grading.write_csv(grades, args.csv)
    print(f"\nWritten to {args.csv}.")
    return 0


def write_nbgrader_sources(args: argparse.Namespace) -> int:
    """Write each of *args.notebooks* into *args.to* as an nbgrader source notebook."""
    import nbformat

    targets = [args.to / notebook.name for notebook in args.notebooks]
    existing = [str(target) for target in targets if target.exists()]
    if existing and not args.force:
        print(
            f"writing-servers nbgrader-source: already there (--force to replace): {', '.join(existing)}",
            file=sys.stderr,
        )
        return 1
    args.to.mkdir(parents=True, exist_ok=True)
    for notebook, target in zip(args.notebooks, targets, strict=True):
        nbformat.write(grading.nbgrader_source(notebook), target)
        print(f"Wrote {target}")
    return 0


def port_number(text: str) -> int:
    """Parse a TCP port for argparse: 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not between 0 and 65535")
    return port


def list_servers() -> int:
    """Print one line per server (name, notebook, description), then one per program to copy."""
    width = max(len(name) for name in SERVERS)
    print("Servers (writing-servers serve NAME):")
    for name, server in SERVERS.items():
        print(f"  {name:<{width}}  notebook {server.notebook}  {server.description}")
    programs = exports.programs()
    width = max(len(name) for name in programs)
    print("\nPrograms to copy, each one file that needs only Twisted (writing-servers export NAME):")
    for name, program in programs.items():
        notebook, what = exports.describe(program)
        print(f"  {name:<{width}}  notebook {notebook}  {program.name}: {what}")
    sys.stdout.flush()
    return 0


def export_program(args: argparse.Namespace) -> int:
    """Write the named program into ``--to``; say where and how to run it."""
    try:
        path = exports.export(args.name, Path(args.to), force=args.force)
    except exports.ExportError as error:
        return fail(str(error), 2)
    print(f"Wrote {path}. Run it with: python {path}   (--help lists its options)", flush=True)
    return 0


def fail(message: str, status: int) -> int:
    """Print *message* as the one line of an error, and return *status*."""
    print(f"writing-servers: {message}", file=sys.stderr, flush=True)
    return status


def serve(args: argparse.Namespace) -> int:
    """Listen with the named server's factory on the real reactor until it is stopped; return the status."""
    server = SERVERS.get(args.name)
    if server is None:
        close = difflib.get_close_matches(args.name, SERVERS, n=1)
        suggestion = f"did you mean {close[0]!r}? " if close else ""
        return fail(f"no server named {args.name!r}; {suggestion}the servers are: {', '.join(SERVERS)}", 2)
    for option, default in OPTION_DEFAULTS.items():
        if getattr(args, option) is None:
            setattr(args, option, default)
        elif option not in server.options:
            users = ", ".join(name for name, other in SERVERS.items() if option in other.options)
            return fail(f"--{option} is for {users} only, not {args.name}", 2)

    # A shell starting us in the background (`&` without job control) makes us ignore SIGINT,
    # and Twisted leaves an ignored SIGINT alone.  A foreground server stops on it: take it back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint

    failures: list[Failure] = []

    def announce(port: IListeningPort) -> None:
        # Printed once the reactor runs, when its SIGINT and SIGTERM handlers are in place:
        # whoever reads this line may stop the server at once.
        reactor.callWhenRunning(print_banner, args, server, port)

    def give_up(failure: Failure) -> None:
        failures.append(failure)
        fail(why_not_listening(failure, args.host, args.port), 1)
        reactor.callWhenRunning(reactor.stop)  # a TCP listen fails at once, before the reactor runs

    # One line per event for the teacher; before this, Twisted would print only tracebacks.
    globalLogBeginner.beginLoggingTo([terminals.TeacherLog(quiet=args.quiet)], redirectStandardIO=False)
    endpoint_type = TCP6ServerEndpoint if is_ipv6(args.host) else TCP4ServerEndpoint
    endpoint = endpoint_type(reactor, args.port, interface=args.host)
    factory = terminals.TerminalFactory(server.build(args), speaks_telnet=server.terminal)
    endpoint.listen(factory).addCallbacks(announce, give_up)
    reactor.run()  # until Ctrl-C, SIGTERM or reactor.stop(); Twisted closes every connection on the way out
    if failures:
        return 1
    print(f"Stopped {args.name}. Goodbye.", flush=True)
    return 0


def print_banner(args: argparse.Namespace, server: Server, port: IListeningPort) -> None:
    """Say where the server listens (the real port, from getHost()) and how to reach it."""
    address = port.getHost()
    assert isinstance(address, (IPv4Address, IPv6Address))  # what a TCP endpoint is bound to
    host, number = address.host, address.port
    print(
        f"{args.name} (notebook {server.notebook}) listening on {host} port {number}. Ctrl-C stops it.",
        flush=True,
    )
    if not is_loopback(host):
        print(
            f"warning: listening on {host}, not loopback: anyone on the network can connect "
            "(nothing is encrypted or checked); --host 127.0.0.1 keeps it to this machine.",
            file=sys.stderr,
            flush=True,
        )
    if server.terminal:
        for line in how_to_connect(host, number):
            print(line, flush=True)
    else:
        print("Connect with a program, not a terminal: each message is framed by its length.", flush=True)
    if is_loopback(host):
        print("Only this machine can connect (loopback). To let students in: --host 0.0.0.0", flush=True)
    reach = host
    if is_wildcard(host):
        addresses = network_addresses(ipv6=is_ipv6(host))
        reach = addresses[0][1] if addresses else "127.0.0.1"
    try_it = server.try_it.replace("{host}", reach).replace("{port}", str(number))
    print("Try it: " + try_it.replace("{log}", os.path.abspath(args.log)), flush=True)


def how_to_connect(host: str, port: int) -> list[str]:
    """The lines that tell the teacher which address students dial, and which machines can reach it."""

    def command(address: str) -> str:
        return f"telnet {address} {port}   or: nc {address} {port}"

    if not is_wildcard(host):
        return [f"Connect with: {command(host)}"]
    addresses = network_addresses(ipv6=is_ipv6(host))
    if not addresses:
        return [
            "This machine has no network address besides loopback: no other machine can connect yet.",
            f"Connect with: {command('127.0.0.1')}",
        ]
    if len(addresses) == 1:
        [(interface, address)] = addresses
        return [
            f"Connect with: {command(address)}   (give students this address: {interface} is the only network)"
        ]
    width = max(len(interface) for interface, _ in addresses)
    default = default_route_address()
    lines = [
        f"This machine has {len(addresses)} addresses. Give students the one on the network they are on:"
    ]
    for interface, address in addresses:
        note = "   (default route)" if address == default else ""
        lines.append(f"  {interface:<{width}}  Connect with: {command(address)}{note}")
    return lines


def network_addresses(ipv6: bool = False) -> list[tuple[str, str]]:
    """(interface, address) for every address other machines may dial; IPv4 first, IPv6 too if *ipv6*.

    Loopback, interfaces that are down, and IPv6 link-local addresses (which
    need a zone to dial) are left out.
    """
    import psutil  # type: ignore[import-untyped]  # here, not at the top: only serve needs it

    stats = psutil.net_if_stats()
    found: list[tuple[int, str, str]] = []
    for interface, entries in psutil.net_if_addrs().items():
        if interface in stats and not stats[interface].isup:
            continue
        for entry in entries:
            if entry.family not in (socket.AF_INET, socket.AF_INET6) or (
                entry.family == socket.AF_INET6 and not ipv6
            ):
                continue
            ip = ipaddress.ip_address(entry.address.split("%")[0])
            if ip.is_loopback or (ip.version == 6 and ip.is_link_local):
                continue
            found.append((ip.version, interface, str(ip)))
    return [(interface, address) for _, interface, address in sorted(found, key=lambda item: item[0])]


def why_not_listening(failure: Failure, host: str, port: int) -> str:
    """One line saying why listening failed, and what to do about it when we know."""
    error = failure.value
    if isinstance(error, CannotListenError) and isinstance(error.socketError, OSError):
        if error.socketError.errno == errno.EADDRINUSE:
            return (
                f"port {port} on {host} is already in use; stop whatever uses it, "
                "or choose another port with --port (0 picks a free one)"
            )
        return f"cannot listen on {host} port {port}: {error.socketError.strerror or error.socketError}"
    return f"cannot listen on {host} port {port}: {failure.getErrorMessage()}"


def is_ipv6(host: str) -> bool:
    """Whether *host* is an IPv6 address (which needs a TCP6 endpoint)."""
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach *host*."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def is_wildcard(host: str) -> bool:
    """Whether *host* means every address of this machine (0.0.0.0 or ::)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def default_route_address() -> str | None:
    """The IPv4 address this machine's default route goes out from; None without a default route.

    Connecting a UDP socket sends nothing: it only asks the system which of
    its addresses the route out would use.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1 (RFC 5737): routed like the Internet, never used
            address: str = probe.getsockname()[0]
            return address
    except OSError:
        return None
