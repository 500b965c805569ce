"""Hostile requests: each is refused with a one-line 4xx naming the value and the fix, the server
stays up, a batch loses only the bad file, and nothing is left in the upload directory."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from ecgfounder.serve import ServeConfig, create_app  # noqa: E402

from servehelpers import MUSE, STANDARD_12, sine_signal  # noqa: E402


@pytest.fixture(scope="module")
def tmp_uploads(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile_uploads")


@pytest.fixture(scope="module")
def client(analyzer, tmp_uploads):
    with TestClient(create_app(analyzer, ServeConfig(tmp_dir=tmp_uploads, max_files=4))) as c:
        yield c


def _secret_header(target: str) -> bytes:
    """A 12-lead WFDB header whose signal file is ``target`` (a file of the server, not uploaded)."""
    return ("x 12 250 5000\n" + "".join(f"{target} 16 1/mV 16 0 0 0 0 {ld}\n" for ld in STANDARD_12)).encode()


def test_huge_sample_values_are_refused_not_a_crash(client):
    # one sample of 1e308 mV: the filters overflowed it to inf and the compiled median kernel
    # segfaulted, killing the server process
    body = sine_signal()
    body["signal"][3][100] = 1e308
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "lead aVR" in detail and "1e+308" in detail and "units" in detail
    assert client.get("/healthz").status_code == 200


def test_wfdb_header_naming_a_server_file_is_refused(client, tmp_path, tmp_uploads):
    secret = tmp_path / "secret.bin"
    (np.arange(12 * 5000, dtype="<i2") % 1000).tofile(secret)  # a file of the server nobody uploaded
    for target in (str(secret), "../" * 12 + str(secret).lstrip("/")):
        r = client.post("/v1/predict", params={"signal": "true"}, files={"file": ("x.hea", _secret_header(target))})
        assert r.status_code == 422, r.text[:300]  # was 200, with the file's bytes as the signal
        assert "x.hea" in r.json()["detail"] and "not a plain file name" in r.json()["detail"]
    files = [("file", (MUSE.name, MUSE.read_bytes())), ("file", ("x.hea", _secret_header(str(secret))))]
    b = client.post("/v1/predict/batch", files=files).json()
    assert (b["n_ok"], b["n_failed"]) == (1, 1)
    bad = next(it for it in b["items"] if not it["ok"])
    assert bad["name"] == "x.hea" and "not a plain file name" in bad["error"]
    assert list(tmp_uploads.iterdir()) == []


def test_batch_reports_refused_files_and_analyses_the_rest(client, tmp_uploads):
    files = [("file", (MUSE.name, MUSE.read_bytes())),
             ("file", ("E1.dat", b"\x00" * 100)),            # a WFDB data file without its header
             ("file", ("sub/" + MUSE.name, MUSE.read_bytes()))]  # the same safe name as the first
    r = client.post("/v1/predict/batch", files=files)
    assert r.status_code == 200, r.text[:300]  # was 422 for the whole batch
    b = r.json()
    assert (b["n_ok"], b["n_failed"]) == (1, 2)
    errors = {it["name"]: it["error"] for it in b["items"] if not it["ok"]}
    assert "without its header" in errors["E1.dat"] and "both named" in errors["sub/" + MUSE.name]
    assert list(tmp_uploads.iterdir()) == []


def test_preparation_error_does_not_show_the_temporary_path(client, tmp_uploads):
    csv = "\n".join(",".join(f"{0.1 * ((i * 7 + j) % 13):.2f}" for j in range(12)) for i in range(5000))
    r = client.post("/v1/predict", params={"fs": 500, "leads": ",".join(["I"] * 12)}, files={"file": ("a.csv", csv)})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("a.csv: missing lead(s)") and str(tmp_uploads) not in detail and "ecgfounder-serve-" not in detail


def test_multipart_errors_name_the_limit_and_the_fix(client):
    r = client.post("/v1/predict/batch", files=[("file", (f"g{i}.xml", b"x")) for i in range(20)])
    assert r.status_code == 422 and "more than 4 files" in r.json()["detail"]  # was 400 "Maximum ... is 5"
    r = client.post("/v1/predict", content=b"--b\r\nfoo\r\n\r\n", headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 422 and "multipart/form-data field 'file'" in r.json()["detail"]
    assert client.get("/healthz").status_code == 200


def test_media_type_is_case_insensitive(client):
    import json

    r = client.post("/v1/predict", content=json.dumps(sine_signal()), headers={"content-type": "Application/JSON"})
    assert r.status_code == 200, r.text[:300]


def test_body_that_never_arrives_frees_its_slot(analyzer):
    # Content-Length promises a body that never comes: the request held its admission slot for
    # ever, so every later request got 429 (request_timeout_s covered only the analysis)
    import asyncio
    import json
    import time

    import httpx

    app = create_app(analyzer, ServeConfig(max_concurrency=2, max_queue=0, request_timeout_s=0.3))

    async def stalled(path, ctype, first):
        sent = []

        async def receive():
            if not sent:
                sent.append(1)
                return {"type": "http.request", "body": first, "more_body": True}
            await asyncio.sleep(3600)

        out = []

        async def send(msg):
            out.append(msg)

        scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": [(b"content-type", ctype), (b"content-length", b"100000")], "http_version": "1.1",
                 "scheme": "http", "server": ("test", 80), "client": ("test", 1), "root_path": "", "app": app}
        await app(scope, receive, send)
        start = next(m for m in out if m["type"] == "http.response.start")
        return start["status"], json.loads(b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body"))

    async def main():
        svc = app.state.service
        await svc.start()
        try:
            t0 = time.perf_counter()
            answers = await asyncio.wait_for(asyncio.gather(
                stalled("/v1/predict", b"application/json", b'{"sig'),
                stalled("/v1/predict/batch", b"multipart/form-data; boundary=b",
                        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n0,')), 5)
            assert time.perf_counter() - t0 < 2
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                ok = await c.post("/v1/predict", json=sine_signal())
        finally:
            await svc.stop()
        return answers, ok

    answers, ok = asyncio.run(main())
    assert [code for code, _ in answers] == [504, 504], answers
    assert all("did not arrive within 0.3 s" in body["detail"] for _, body in answers)
    assert ok.status_code == 200, ok.text[:300]  # the slot is free again


def test_recording_longer_than_max_record_s_is_refused(analyzer, tmp_path):
    """A file is read no further than just past max_record_s (memory bounded whatever an upload
    expands to) and a longer one is refused naming the limit; one within it is analysed."""
    from servehelpers import WFDB

    cfg = ServeConfig(tmp_dir=tmp_path, max_record_s=8.0)
    with TestClient(create_app(analyzer, cfg)) as c:
        r = c.post("/v1/predict", files=[("file", ("E07500.hea", WFDB.with_suffix(".hea").read_bytes())),
                                         ("file", ("E07500.mat", WFDB.with_suffix(".mat").read_bytes()))])
        assert r.status_code == 422, r.text[:300]  # a 10-s record
        assert r.json()["detail"] == ("E07500.hea: the recording is longer than 8 s, the most this service analyses "
                                      "(max_record_s); send an excerpt, or run 'ecgfounder predict' on long recordings.")
        r = c.post("/v1/predict", json=sine_signal(seconds=9.0))
        assert r.status_code == 422 and "longer than 8 s" in r.json()["detail"]
        assert c.post("/v1/predict", json=sine_signal(seconds=8.0)).status_code == 200
    with pytest.raises(ValueError, match="max_record_s must be > 0"):
        ServeConfig(max_record_s=float("nan"))


def test_timed_out_work_keeps_its_slot_until_it_ends(analyzer, tmp_path, monkeypatch):
    """A 504 stops the request waiting, not its thread: the thread must keep its concurrency slot,
    or every timed-out request lets one more read/preparation run beside it."""
    import threading
    import time

    lock, running, most = threading.Lock(), [0], [0]
    real = analyzer.prepare

    def slow(rec, *more):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.6)
            return real(rec, *more)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(analyzer, "prepare", slow)
    with TestClient(create_app(analyzer, ServeConfig(tmp_dir=tmp_path, max_concurrency=1, request_timeout_s=0.2))) as c:
        for _ in range(3):
            assert c.post("/v1/predict", json=sine_signal()).status_code == 504
        time.sleep(0.7)  # the last thread that started ends
        assert most[0] == 1, most[0]  # was 3: each timed-out request freed its slot at once
        assert running[0] == 0


def test_library_hints_name_the_request_parameters(client):
    """The library asks for its own arguments with the command line's flag beside them ("pass fs=...
    (CLI: --fs)"), which a client of the service cannot pass: it sets query parameters (a file) or
    JSON fields (an inline signal), and hints it cannot follow (fill_missing, the 1-lead weights) are left out."""
    three = "\n".join("0.1,0.2,0.3" for _ in range(3000))
    answers = {
        "no fs": client.post("/v1/predict", files={"file": ("a.csv", three)}),
        "no leads": client.post("/v1/predict", params={"fs": 500}, files={"file": ("a.csv", three)}),
        "json fs": client.post("/v1/predict", json={**sine_signal(), "fs": 10}),
        "one lead": client.post("/v1/predict", json={"signal": [[0.1] * 5000], "fs": 500, "leads": ["V2"]}),
        "format": client.post("/v1/predict", params={"format": "bogus"}, files={"file": ("a.xml", MUSE.read_bytes())}),
    }
    detail = {k: r.json()["detail"] for k, r in answers.items()}
    assert all(r.status_code == 422 for r in answers.values()), detail
    for k, text in detail.items():
        assert "CLI" not in text and "--" not in text and "fill_missing" not in text, (k, text)
    assert "pass the query parameter fs=..." in detail["no fs"]
    assert "pass the query parameter leads=I,II,..." in detail["no leads"]
    assert "the JSON field fs=..." in detail["json fs"]
    assert detail["one lead"].startswith("signal: missing lead(s) I, II")
    assert detail["format"].startswith("the query parameter format: unknown format 'bogus'; choose one of")


def test_bad_values_are_named_with_what_was_given(client):
    """Each refusal names the parameter or field and the value given; values that were let through
    (a NaN or huge rate, an empty lead name) or ignored (a misspelt query parameter, an unsupported
    JSON field such as units) are refused before any work."""
    import json

    nan_fs = json.dumps({**sine_signal(), "fs": float("nan")})
    cases = [
        (dict(params={"fs": "abc"}, json=sine_signal()), 'query parameter fs: Input should be a valid number, unable to '
                                                         'parse string as a number (got string "abc")'),
        (dict(params={"fs": "nan"}, json=sine_signal()), 'query parameter fs: Input should be a finite number (got string "nan")'),
        (dict(params={"fs": "1e300"}, json=sine_signal()), "query parameter fs: Input should be less than or equal to 20000"),
        (dict(params={"leads": "I,,II"}, json=sine_signal()), "the query parameter leads='I,,II' has an empty lead name"),
        (dict(params={"embeddings": "true"}, json=sine_signal()), 'query parameter embeddings: unknown parameter (got string '
                                                                  '"true") (the query parameters are attribution,'),
        (dict(json={**sine_signal(), "units": "uV"}), 'units: unknown field (got string "uV")'),
        (dict(content=nan_fs, headers={"content-type": "application/json"}), "fs: Input should be a finite number (got number NaN)"),
        (dict(json={"signal": [[None] * 5000], "fs": 500, "leads": ["I"]}),
         "signal[0][0]: Input should be a valid number (got null) (and 4999 more like it)"),
    ]
    for kwargs, expect in cases:
        r = client.post("/v1/predict", **kwargs)
        assert r.status_code == 422, (expect, r.text[:200])
        assert expect in r.json()["detail"] and len(r.json()["detail"]) < 400, r.json()["detail"]
