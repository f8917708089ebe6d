"""A TCP proxy for fault tests: forwards a port to a server, and can cut every connection and refuse new
ones (the server "goes away"), come back, or forward a request and drop its reply (the client sees an
error after the server did the work)."""

import socket
import threading


class Proxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.drop_next_reply = False
        self.cut_after: bytes = b""  # cut everything once the server has answered a message holding this
        self.lose_answer = False  # with cut_after: cut before that answer reaches the client
        self.listener = None
        self.port = 0
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
            listener.close()
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
        try:
            while data := source.recv(65536):
                if drop:
                    break
                if upstream and self.cut_after and self.cut_after in data:
                    self.cut_after = b""
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
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
