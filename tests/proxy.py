"""A TCP proxy for fault tests: forwards a port to a server, and can cut every connection and refuse new
ones (the server "goes away"), come back, or forward a request and drop its reply (the client sees an
error after the server did the work)."""

import random
import socket
import struct
import threading


class Proxy:
    def __init__(self, target_host: str, target_port: int, listen_port: int = 0):
        """`listen_port` 0: any free port. A proxy cut for long should listen below the ephemeral range
        (see `fixed_port`): while it is cut, another connection may take an ephemeral port as its own."""
        self.target = (target_host, target_port)
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.drop_next_reply = False
        self.cut_after: bytes = b""  # cut everything once the server has answered a message holding this
        self.cut_after_prior: bytes = b""  # ... sent on a connection that carried this before (or with it)
        self.lose_answer = False  # with cut_after: cut before that answer reaches the client
        self.listener = None
        self.port = listen_port
        self.restore()

    def restore(self) -> None:
        """Listen (again, on the same port) and forward new connections."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close every forwarded connection and refuse new ones until `restore()`."""
        with self.lock:
            listener, self.listener = self.listener, None
            pairs, self.pairs = self.pairs, []
        if listener is not None:
            _close(listener)  # the shutdown wakes the thread blocked in accept(), which holds the port
        for pair in pairs:
            for sock in pair:
                _close(sock)

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.target)
            except OSError:
                _close(client)
                continue
            with self.lock:
                if self.listener is not listener:
                    _close(client), _close(server)
                    return
                self.pairs.append((client, server))
                drop, self.drop_next_reply = self.drop_next_reply, False
            armed = threading.Event()  # this connection carried the marker: cut after the server's answer
            threading.Thread(
                target=self._pump, args=(client, server, False, armed, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, drop, armed, False), daemon=True
            ).start()

    def _pump(self, source, sink, drop: bool, armed: threading.Event, upstream: bool) -> None:
        """Copy bytes one way. `drop`: swallow the reply and close the client once it has been sent.
        `armed`: this connection carried `cut_after`; cut everything once the server has answered it."""
        carried_prior = False
        try:
            while data := source.recv(65536):
                if drop:
                    break
                if upstream and self.cut_after_prior and self.cut_after_prior in data:
                    carried_prior = True
                if (
                    upstream
                    and self.cut_after
                    and self.cut_after in data
                    and (carried_prior or not self.cut_after_prior)
                ):
                    self.cut_after = self.cut_after_prior = b""
                    armed.set()
                if not upstream and armed.is_set():
                    if not self.lose_answer:
                        sink.sendall(data)
                    self.cut()
                    return
                sink.sendall(data)
        except OSError:
            pass
        _close(source), _close(sink)


def _close(sock: socket.socket) -> None:
    """Close at once: the shutdown wakes a thread blocked reading it, and no linger makes the close a reset,
    so that no socket is left holding the proxy's port (a FIN_WAIT left by an idle client kept it for a
    minute, and listening again failed)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def fixed_port(low: int = 20000, high: int = 32000) -> int:
    """A free port below Linux's ephemeral range (32768 and up), which no outgoing connection takes."""
    for _ in range(100):
        port = random.randint(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free port below the ephemeral range")
