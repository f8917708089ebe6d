"""Real receivers for notification tests: an SMTP server (aiosmtpd) and an HTTP webhook receiver (http.server
in a thread) that checks each request's HMAC signature, can fail its first requests and can hang."""

import hashlib
import hmac
import json
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.e2e.conftest import free_port


class SmtpReceiver:
    """Collects every message it is sent (parsed) in `messages`; refuses the first `fail` for now (451)."""

    def __init__(self, fail: int = 0):
        self.messages = []
        self.fail = fail
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server, session, envelope):
        if self.fail > 0:
            self.fail -= 1
            return "451 4.3.0 Try again later"
        message = message_from_bytes(envelope.content)
        self.messages.append((envelope.rcpt_tos, message))
        return "250 OK"

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    @property
    def port(self) -> int:
        return self.controller.port


def verify(secret: str, header: str, body: bytes) -> bool:
    """What the README tells receivers to do with X-Gpuq-Signature."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


class WebhookReceiver:
    """Answers 500 to its first `fail` requests (and to a bad signature), then 200. With `hang` set, each
    request holds its connection (`holding` is set) until `release` is. Records (headers, body, signed)."""

    def __init__(self, secret: str = "", fail: int = 0):
        self.secret = secret
        self.fail = fail
        self.requests = []
        self.hang = False
        self.holding = threading.Event()  # a request is being held
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify(receiver.secret, self.headers.get("X-Gpuq-Signature", "t=0,v1=x"), body)
                receiver.requests.append((dict(self.headers), json.loads(body), ok))
                if receiver.hang:
                    receiver.holding.set()
                    receiver.release.wait(60)
                failing = len(receiver.requests) <= receiver.fail
                self.send_response(500 if failing or not ok else 200)
                self.end_headers()
                self.wfile.write(b"no" if failing else b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
