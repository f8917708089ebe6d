"""A doorbell between processes of one machine: what wakes a node's task pusher, and every web
process's live relay, on SQLite.

On PostgreSQL an enqueue sends `NOTIFY gpuq_tasks` and the pusher LISTENs (scheduling/broker.py). SQLite has
no such thing, and every process that shares a SQLite database is on its machine, so the enqueuing process
rings instead: one datagram, after its transaction commits, to a Unix socket the pusher of that queue has
bound. The pusher sleeps in `select` until a ring comes or its idle look is due; nothing polls.

- The socket's name is in Linux's abstract namespace (nothing on disk to go stale or to outgrow a path's
  108 bytes), derived from the database file and the queue's name: one listener per queue and database.
  That namespace belongs to the network namespace: processes in different containers sharing one SQLite
  file do not hear each other's rings, and a pusher then finds its tasks at its idle look.
  A second process that binds the same name is refused and polls instead (`Bell.bound` is False).
- A ring is only a hint to look at the queue, never a message: a lost or extra ring changes nothing but
  when the pusher looks (the idle look, every GPUQ_Q_IDLE_POLL_SECONDS, catches anything a ring missed).
- The live relays (scheduling/relay.py) are one per web process, several per database: each binds the
  first free of EVENT_BELLS names, and a transaction that wrote events rings them all as it commits
  (`ring_all`: one datagram per name, a refused one costs a failed system call). A relay beyond the
  first EVENT_BELLS finds none free and looks for changes as it did before the bells.
- Anyone on the machine may send to an abstract socket. The bell takes rings only from processes of its
  own Unix user (the kernel stamps each datagram with its sender's credentials, SO_PASSCRED): a job run as
  another account cannot make a node's pusher or a relay spin, and neither looks more than a hundred
  times a second in any case (RING_SPACING_SECONDS).
"""

import hashlib
import logging
import os
import select
import socket
import struct
import time
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("gpuq.doorbell")

_CREDENTIALS = struct.calcsize("3i")  # struct ucred: pid, uid, gid


RING_SPACING_SECONDS = 0.01  # a listener woken by rings looks at most a hundred times a second
EVENT_BELLS = 16  # the live relays of one database that a ring wakes (web processes of one machine)
EVENTS = tuple(f"events/{slot}" for slot in range(EVENT_BELLS))  # their bells' names


def until_next_look(looked: float) -> float:
    """Seconds a listener that last looked at `looked` (time.monotonic()) waits before it looks again:
    never two looks within RING_SPACING_SECONDS, however fast rings come."""
    return max(0.0, looked + RING_SPACING_SECONDS - time.monotonic())


@lru_cache(maxsize=64)
def address(database: str, queue: str) -> bytes:
    """The abstract socket name of `queue`'s bell for the SQLite database at `database`."""
    where = str(Path(database).resolve()) if database and not database.startswith(":") else database
    digest = hashlib.sha256(f"{where}\0{queue}".encode()).hexdigest()[:32]
    return b"\0gpuq-bell/" + digest.encode()


def ring(database: str, queue: str) -> None:
    """Wake whoever listens to `queue`'s bell, if anyone does; never blocks, never fails."""
    ring_all(database, (queue,))


def ring_all(database: str, queues) -> None:
    """Ring each of these bells (see `ring`)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for queue in queues:
            try:
                sender.sendto(b"!", address(database, queue))
            except OSError:  # nobody listens (refused), or rings are already waiting (its buffer is full)
                pass


def first_free(database: str, queues) -> "Bell | None":
    """A bell bound to the first of these names no other process holds, or None when all are taken."""
    for queue in queues:
        bell = Bell(database, queue, warn=False)
        if bell.bound:
            return bell
    return None


class Bell:
    """The listening end: `wait(timeout)` returns how many rings came (from this Unix user) meanwhile."""

    def __init__(self, database: str, queue: str, *, warn: bool = True):
        self.ignored = 0  # rings from other users, dropped
        self._address, self._queue = address(database, queue), queue
        self._socket = None
        self._warn, self._warned = warn, False  # a relay trying names is not warned of a taken one
        self.bind()

    def bind(self) -> bool:
        """Listen, if not yet; False while another process holds the name (a pusher of this queue that
        is still stopping, or a squatter): the caller polls meanwhile and tries again later."""
        if self._socket is not None:
            return True
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        listener.setblocking(False)
        try:
            listener.bind(self._address)
        except OSError as error:
            listener.close()
            if self._warn and not self._warned:
                log.warning("task queue %s: its doorbell is taken (%s); polling", self._queue, error)
                self._warned = True
            return False
        if self._warned:
            log.warning("task queue %s: its doorbell is ours again", self._queue)
        self._socket = listener
        return True

    @property
    def bound(self) -> bool:
        return self._socket is not None

    def wait(self, timeout: float) -> int:
        """Sleep until a ring comes or `timeout` seconds pass; the rings received (0: none, timed out)."""
        if self._socket is None:
            return 0
        readable, _, _ = select.select([self._socket], [], [], max(0.0, timeout))
        return self.drain() if readable else 0

    def fileno(self) -> int:
        """The listening socket's descriptor (for an event loop's reader); -1 when not bound."""
        return self._socket.fileno() if self._socket is not None else -1

    def drain(self) -> int:
        """The rings (from this Unix user) waiting now, taken; never blocks."""
        if self._socket is None:
            return 0
        rings = 0
        while True:
            try:
                _, ancillary, _, _ = self._socket.recvmsg(16, socket.CMSG_SPACE(_CREDENTIALS))
            except BlockingIOError:
                return rings
            if self._from_us(ancillary):
                rings += 1
            else:
                self.ignored += 1

    @staticmethod
    def _from_us(ancillary) -> bool:
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= _CREDENTIALS:
                _, uid, _ = struct.unpack("3i", data[:_CREDENTIALS])
                return uid == os.getuid()
        return False

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
