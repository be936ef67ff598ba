"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1, on a port it opens itself, in a thread; it
stops when its `with` block ends."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Request:
    """One POST as received, and the status it was answered with."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)


class Receiver:
    """Answers each POST with `answer(path, n)`: n is how many times this delivery (X-Agent-Delivery) was received."""

    def __init__(self, answer: Callable[[str, int], int] = lambda path, n: 200) -> None:
        self.answer, self.requests, self.seen = answer, [], Counter()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver._answer(self.path, dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.daemon_threads, self.server.request_queue_size = True, 64  # several deliverers connect at once
        self.server.server_bind()
        self.server.server_activate()

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        """Count the request and choose its status."""
        with self._lock:
            uid = headers.get("X-Agent-Delivery", "")
            self.seen[uid] += 1
            status = self.answer(path, self.seen[uid])
            self.requests.append(Request(path, headers, body, status))
        return status

    def url(self, path: str = "/hook") -> str:
        """The URL of a path on this receiver."""
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def delivered(self) -> Counter:
        """Deliveries answered with a 2xx, by X-Agent-Delivery."""
        return Counter(r.headers["X-Agent-Delivery"] for r in self.requests if 200 <= r.status < 300)

    def __enter__(self) -> "Receiver":
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class Silent:
    """Accepts connections and never answers (a receiver that hangs), until its `with` block ends."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.held: list[socket.socket] = []
        self._stop = threading.Event()

    def url(self) -> str:
        """Its URL."""
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _accept(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except TimeoutError:
                continue

    def __enter__(self) -> "Silent":
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        for s in self.held:
            s.close()
        self.sock.close()


def closed_port() -> int:
    """A loopback port nothing listens on (opened, then closed)."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]
