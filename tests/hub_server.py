"""A local HTTP server standing in for the Hugging Face Hub.

It answers what ``huggingface_hub`` asks when it downloads a file (``HEAD``/``GET
/{repo}/resolve/{revision}/{filename}``) and when it pushes one (``POST /api/repos/create``,
``/api/validate-yaml``, ``/api/models/{repo}/preupload/{revision}`` and
``/api/models/{repo}/commit/{revision}``, the NDJSON commit with files inline in base64: the
stand-in answers every pre-upload with ``uploadMode: regular``, so no LFS/Xet transfer is needed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakeHub:
    """Serves ``files[(repo_id, filename)] = bytes`` at ``/{repo}/resolve/{revision}/{filename}``.

    Files added by :meth:`add` are served at any revision under :data:`COMMIT`.  Files pushed by
    commits are served at ``main`` (the latest commit) and at each commit's id, so a revision
    pins what was pushed then.  ``corrupt`` names files whose body differs from what was
    advertised (a damaged download).  ``requests`` records every (method, path) seen; ``repos``
    the repositories created (id → creation payload); ``commits`` every commit (repo, id, message,
    paths); ``tokens`` the Authorization headers of write requests.
    """

    COMMIT = "d9b1793951b2342f5f7e84f1ac03cd37f8a08724"

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}
        self.corrupt: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.repos: dict[str, dict] = {}
        self.commits: list[dict] = []
        self.tokens: list[str | None] = []
        self._snapshots: dict[tuple[str, str], dict[str, bytes]] = {}  # (repo, commit id) -> files
        self._heads: dict[str, str] = {}  # repo -> latest commit id ("main")
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # silence
                pass

            # ---------------------------------------------------------------- downloads
            def _lookup(self):
                hub.requests.append((self.command, self.path))
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return None, None, None
                repo, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                with hub._lock:
                    commit = hub._heads.get(repo) if revision == "main" else revision
                    snap = hub._snapshots.get((repo, commit or ""))
                if snap is not None:
                    return filename, snap.get(filename), commit
                return filename, hub.files.get((repo, filename)), hub.COMMIT

            def _headers(self, body, commit):
                self.send_response(200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()

            def do_HEAD(self):
                filename, body, commit = self._lookup()
                if body is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return
                self._headers(body, commit)

            def do_GET(self):
                filename, body, commit = self._lookup()
                if body is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return
                self._headers(body, commit)
                if filename in hub.corrupt:  # same length, flipped bytes in the middle
                    mid = len(body) // 2
                    body = body[:mid] + bytes(b ^ 0xFF for b in body[mid : mid + 64]) + body[mid + 64 :]
                self.wfile.write(body)

            # ---------------------------------------------------------------- uploads
            def _json(self, status: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                hub.requests.append((self.command, self.path))
                hub.tokens.append(self.headers.get("Authorization"))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:3] == ["api", "repos", "create"]:
                    req = json.loads(body)
                    repo = f"{req.get('organization') or 'user'}/{req['name']}"
                    if repo in hub.repos:
                        # as the Hub: a conflict names the existing repository (create_repo(exist_ok=True) reads it)
                        return self._json(409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo}"})
                    hub.repos[repo] = req
                    return self._json(200, {"url": f"{hub.url}/{repo}", "name": repo})
                if parts[:2] == ["api", "validate-yaml"]:
                    return self._json(200, {"errors": [], "warnings": []})
                if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit"):
                    repo = "/".join(parts[2:4])
                    if repo not in hub.repos:
                        return self._json(404, {"error": "Repository not found"})
                    if parts[4] == "preupload":
                        files = json.loads(body)["files"]
                        return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                           "shouldIgnore": False, "oid": None} for f in files]})
                    return self._commit(repo, body)
                return self._json(404, {"error": f"not served by the stand-in Hub: {self.path}"})

            def _commit(self, repo: str, body: bytes) -> None:
                lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                added = {}
                message = ""
                for item in lines:
                    if item["key"] == "header":
                        message = item["value"].get("summary", "")
                    elif item["key"] == "file":
                        v = item["value"]
                        added[v["path"]] = base64.b64decode(v["content"]) if v.get("encoding") == "base64" else v["content"].encode()
                    else:
                        return self._json(400, {"error": f"the stand-in Hub takes inline files only, not {item['key']}"})
                with hub._lock:
                    snap = {**hub._snapshots.get((repo, hub._heads.get(repo, "")), {}), **added}
                    oid = hashlib.sha1(json.dumps([repo, len(hub.commits), sorted(added)]).encode()).hexdigest()
                    hub._snapshots[(repo, oid)] = snap
                    hub._heads[repo] = oid
                    hub.commits.append({"repo": repo, "oid": oid, "message": message, "paths": sorted(added)})
                self._json(200, {"commitUrl": f"{hub.url}/{repo}/commit/{oid}", "commitOid": oid,
                                 "pullRequestUrl": None, "success": True})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # a short poll: shutdown() waits up to one poll interval (0.5 s by default, on every test's teardown)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, repo_id: str, filename: str, path: Path) -> None:
        self.files[(repo_id, filename)] = Path(path).read_bytes()

    def pushed(self, repo_id: str, filename: str, revision: str = "main") -> bytes | None:
        """The bytes of ``filename`` as pushed to ``repo_id`` at ``revision`` (None if absent)."""
        commit = self._heads.get(repo_id) if revision == "main" else revision
        return self._snapshots.get((repo_id, commit or ""), {}).get(filename)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
