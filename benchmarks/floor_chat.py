"""The floor: the least a one-thread Python chat server can do, straight on epoll.

The same conversation as the course's chat for a well-behaved client (the
greeting, the name rule, "Welcome, NAME!", ``<NAME> text`` to everyone
else), with nothing else: no framework, no limits, no error lines, no
half-close.  Like Twisted it queues what each connection is owed during one
pass over the ready sockets and then sends each connection its queue in one
``send``; sockets have TCP_NODELAY on.  Run as a script, it serves on a free
loopback port, prints ``PORT <n>``, and stops at the end of stdin.
"""

from __future__ import annotations

import os
import select
import socket
import sys

import common

from writing_servers.chat import name_problem, visible


class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.name: str | None = None
        self.received = b""
        self.owed: list[bytes] = []
        self.writing = False  # registered for EPOLLOUT: the kernel took only part of what it is owed


def main() -> None:
    common.raise_fd_limit(4096)
    listener = socket.create_server((common.LOOPBACK, 0), backlog=128)
    listener.setblocking(False)
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    poller.register(sys.stdin.fileno(), select.EPOLLIN)
    connections: dict[int, Connection] = {}
    users: dict[str, Connection] = {}
    dirty: set[Connection] = set()

    def owe(connection: Connection, data: bytes) -> None:
        connection.owed.append(data)
        dirty.add(connection)

    def close(connection: Connection) -> None:
        fd = connection.sock.fileno()
        poller.unregister(fd)
        del connections[fd]
        dirty.discard(connection)
        if connection.name is not None and users.get(connection.name) is connection:
            del users[connection.name]
        connection.sock.close()

    def line_received(connection: Connection, line: bytes) -> None:
        text = line.removesuffix(b"\r").decode("utf-8", "replace")
        if connection.name is None:
            name = text.strip()
            problem = name_problem(name, users)
            if problem is not None:
                owe(connection, problem.encode() + b"\r\n")
                return
            owe(connection, f"Welcome, {name}!\r\n".encode())
            connection.name = name
            users[name] = connection
        elif text.strip():
            data = f"<{connection.name}> {visible(text)}\r\n".encode()
            for other in users.values():
                if other is not connection:
                    owe(other, data)

    while True:
        for fd, events in poller.poll():
            if fd == listener.fileno():
                while True:
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        break
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    newcomer = Connection(sock)
                    connections[sock.fileno()] = newcomer
                    poller.register(sock.fileno(), select.EPOLLIN)
                    owe(newcomer, b"What's your name?\r\n")
            elif fd == sys.stdin.fileno():
                if not os.read(fd, 4096):
                    return
            elif (connection := connections.get(fd)) is not None:
                if events & select.EPOLLOUT:
                    dirty.add(connection)
                if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                    try:
                        data = connection.sock.recv(262144)
                    except OSError:
                        data = b""
                    if not data:
                        close(connection)
                        continue
                    *lines, connection.received = (connection.received + data).split(b"\n")
                    for line in lines:
                        line_received(connection, line)
        for connection in dirty:
            data = b"".join(connection.owed)
            try:
                sent = connection.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                continue  # its EPOLLHUP/EPOLLERR closes it on the next pass
            rest = data[sent:]
            connection.owed = [rest] if rest else []
            if bool(rest) != connection.writing:
                connection.writing = bool(rest)
                poller.modify(connection.sock.fileno(), select.EPOLLIN | (select.EPOLLOUT if rest else 0))
        dirty.clear()


if __name__ == "__main__":
    main()
