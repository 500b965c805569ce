"""What an integrator building on the service meets: status codes and messages of refused requests,
the schema's word on each answer, and the server's own limits."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from ecgfounder.serve import ServeConfig, create_app  # noqa: E402

LIMIT = 10_000


@pytest.fixture(scope="module")
def client(analyzer, tmp_path_factory):
    app = create_app(analyzer, ServeConfig(max_upload_bytes=LIMIT, tmp_dir=tmp_path_factory.mktemp("integrator")))
    with TestClient(app) as c:
        yield c


def test_a_chunked_body_over_the_limit_is_refused_in_words(client):
    # a body without Content-Length (chunked) refused as it streamed in said "request body of more exceeds"
    def chunks():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
        for _ in range(10):
            yield b"0," * 1000

    r = client.post("/v1/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413
    assert r.json()["detail"] == (f"request body exceeds the server's limit of {LIMIT} bytes (its max_upload_bytes); "
                                  "send a smaller file.")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_of_another_media_type_gets_415(client, ctype):
    # it got 422, the status of a file that could not be read: a client could not tell the two apart
    headers = {"content-type": ctype} if ctype else {}
    for path in ("/v1/predict", "/v1/predict/batch"):
        r = client.post(path, content=b"signal=1", headers=headers)
        assert r.status_code == 415, (path, r.status_code, r.text[:200])
        assert r.json()["detail"].startswith(f"unsupported content type {ctype or '(none)'!r}; send multipart/form-data")
        doc = client.get("/openapi.json").json()["paths"][path]["post"]["responses"]
        assert doc["415"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}


def test_the_server_spools_uploads_in_its_tmp_dir(tiny_ckpt, monkeypatch, tmp_path):
    """Starlette parks each upload over 1 MB in a file of the default temporary folder while it parses
    the body (``SpooledTemporaryFile()``, no folder given): that was the system's, whatever tmp_dir said."""
    import tempfile
    from pathlib import Path

    import uvicorn

    from ecgfounder.serve import run_server

    monkeypatch.setattr(tempfile, "tempdir", None)  # (restored after the test)
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(dir=tempfile.gettempdir()))
    run_server(tiny_ckpt, config=ServeConfig(tmp_dir=tmp_path), log_level="warning")
    assert Path(seen["dir"]) == tmp_path


def test_idle_keep_alive_connections_do_not_turn_requests_away(tiny_ckpt, monkeypatch):
    # `ecgfounder serve` capped uvicorn's connections at (max_concurrency + max_queue) * 4 + 16, idle
    # keep-alive ones counted: past it, an idle server answered every request with a plain-text 503
    # "Service Unavailable" and closed the connection
    import socket
    from urllib.parse import urlparse

    import httpx
    import uvicorn

    from ecgfounder.serve import run_server
    from servehelpers import running_server, sine_signal

    got = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: got.update(app=app, kw=kw))
    run_server(tiny_ckpt, config=ServeConfig(max_concurrency=1, max_queue=1), log_level="warning")
    kw = {k: v for k, v in got["kw"].items() if k not in ("host", "port")}
    with running_server(got["app"], **kw) as url:
        u = urlparse(url)
        idle = []
        try:
            for _ in range(30):  # clients that asked once and keep their connection open
                s = socket.create_connection((u.hostname, u.port), timeout=10)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s.recv(4096).startswith(b"HTTP/1.1 200")
                idle.append(s)
            r = httpx.post(url + "/v1/predict", json=sine_signal(), timeout=30)
            assert r.status_code == 200, r.text[:200]
        finally:
            for s in idle:
                s.close()


def test_a_query_parameter_given_twice_is_refused(client):
    # fs=500&fs=250 was read as 250 without a word: the recording analysed at another rate than meant
    r = client.post("/v1/predict?fs=500&fs=250", files={"file": ("a.csv", b"I,II\n0,0\n")})
    assert r.status_code == 422
    assert r.json()["detail"] == "the query parameter fs is given 2 times ('500', '250'); give it once."
    r = client.post("/v1/predict/batch?signal=true&signal=false", files={"file": ("a.csv", b"I,II\n0,0\n")})
    assert r.status_code == 422 and "the query parameter signal is given 2 times" in r.json()["detail"]


def test_the_schema_says_what_readyz_and_metrics_answer(client):
    # /metrics was documented as JSON (a client generated from the schema failed to parse its text), and
    # neither its 401 nor the body of /readyz's 200 was documented
    paths = client.get("/openapi.json").json()["paths"]
    metrics = paths["/metrics"]["get"]["responses"]
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain") and list(metrics["200"]["content"]) == ["text/plain"]
    assert metrics["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    ready = paths["/readyz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    body = client.get("/readyz").json()
    assert set(body) == set(ready["required"]) == set(ready["properties"]) and body["status"] == "ready"


def test_reading_an_upload_counts_against_the_request_timeout(analyzer, monkeypatch, tmp_path):
    # a file slow to read was answered when its reading ended, however long past request_timeout_s
    import time

    from servehelpers import MUSE

    read = analyzer.iter_read

    def slow(path, **kw):
        time.sleep(0.8)
        yield from read(path, **kw)

    monkeypatch.setattr(analyzer, "iter_read", slow)
    with TestClient(create_app(analyzer, ServeConfig(request_timeout_s=0.2, tmp_dir=tmp_path))) as c:
        t0 = time.perf_counter()
        r = c.post("/v1/predict", files={"file": (MUSE.name, MUSE.read_bytes())})
        took = time.perf_counter() - t0
    assert r.status_code == 504 and "request_timeout_s" in r.json()["detail"], r.text[:200]
    assert took < 0.75, took  # (the reading alone takes 0.8 s)
