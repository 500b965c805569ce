"""A local HTTP server standing in for the Hugging Face Hub's file endpoint (``/resolve/``)."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakeHub:
    """Serves ``files[(repo_id, filename)] = bytes`` at ``/{repo}/resolve/{revision}/{filename}``.

    ``corrupt`` names files whose body differs from what was advertised (a damaged download).
    ``requests`` records every (method, path) seen.
    """

    COMMIT = "d9b1793951b2342f5f7e84f1ac03cd37f8a08724"

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}
        self.corrupt: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # silence
                pass

            def _lookup(self):
                hub.requests.append((self.command, self.path))
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return None, None
                repo = "/".join(parts[:2])
                filename = "/".join(parts[4:])
                return filename, hub.files.get((repo, filename))

            def _headers(self, filename, body):
                self.send_response(200)
                self.send_header("X-Repo-Commit", hub.COMMIT)
                self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()

            def do_HEAD(self):
                filename, body = self._lookup()
                if body is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return
                self._headers(filename, body)

            def do_GET(self):
                filename, body = self._lookup()
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self._headers(filename, body)
                if filename in hub.corrupt:  # same length, flipped bytes in the middle
                    mid = len(body) // 2
                    body = body[:mid] + bytes(b ^ 0xFF for b in body[mid : mid + 64]) + body[mid + 64 :]
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, repo_id: str, filename: str, path: Path) -> None:
        self.files[(repo_id, filename)] = Path(path).read_bytes()

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
