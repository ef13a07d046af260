"""A loopback (127.0.0.1) HTTP server for the download tests: the Hugging Face hub endpoints that
``hf_hub_download`` uses, plain file URLs like download.pytorch.org's, a request log, and faults.

Hub: ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` answer with ``X-Repo-Commit``,
``ETag`` (the SHA-256 for large files, as the hub does for LFS files, which ``hf_hub_download``
names its cache blob by), ``Content-Length`` and ``Accept-Ranges``; a ``Range`` GET gets a 206. A
missing file is a 404 with ``X-Error-Code: EntryNotFound``. Plain URLs: ``GET /<path>``.

Faults, per served path: ``drop_after=N`` sends the headers and N bytes of the body, then closes the
connection; ``dead_after_drop`` makes every later request to that path close without an answer (a
server that went away); ``etag=...`` announces another SHA-256 than the body's.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Served:
    body: bytes
    etag: str | None = None  # None: the body's SHA-256
    drop_after: int | None = None
    dead_after_drop: bool = False
    dropped: bool = False


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class LoopbackServer:
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def serve_hub_file(self, repo_id: str, filename: str, body: bytes, **faults) -> str:
        path = f"/{repo_id}/resolve/main/{filename}"
        self.files[path] = Served(body, **faults)
        return path

    def serve_file(self, path: str, body: bytes, **faults) -> str:
        self.files[path] = Served(body, **faults)
        return self.url + path

    def start(self) -> LoopbackServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._answer(head=True)

            def do_GET(self):
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                server.requests.append(Request(self.command, self.path, self.headers.get("Range")))
                served = server.files.get(self.path.split("?")[0])
                if served is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if served.dropped and served.dead_after_drop:
                    self._drop()
                    return
                body, start = served.body, 0
                want = self.headers.get("Range")
                if want and not head and want.startswith("bytes="):
                    start = int(want[6:].split("-")[0] or 0)
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{served.etag or hashlib.sha256(body).hexdigest()}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                if head:
                    return
                if served.drop_after is not None and not served.dropped:
                    served.dropped = True
                    self.wfile.write(body[start : start + served.drop_after])
                    self.wfile.flush()
                    self._drop()
                    return
                self.wfile.write(body[start:])

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # dropped connections are the point
                pass

        self._httpd = Quiet(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def count(self, needle: str = "", method: str | None = None) -> int:
        return sum(1 for r in self.requests if needle in r.path and (method is None or r.method == method))


class SilentServer:
    """Accepts connections on 127.0.0.1, reads each request line, never answers (a firewall or a dead
    proxy that swallows requests). ``request_lines`` lists what was asked."""

    def start(self) -> SilentServer:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections: list[socket.socket] = []
        self.request_lines: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._read_line, args=(conn,), daemon=True).start()

    def _read_line(self, conn: socket.socket) -> None:
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = conn.recv(1024)
                if not chunk:
                    return
                data += chunk
        except OSError:
            return
        self.request_lines.append(data.split(b"\r\n")[0].decode("latin-1"))

    def stop(self) -> None:
        self.sock.close()
        for c in self.connections:
            c.close()


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
