"""Edges of the service found in an audit: attribution under load and on long recordings, and MCP paths."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from ecgfounder.serve import ServeConfig, create_app  # noqa: E402

from servehelpers import sine_signal  # noqa: E402


@pytest.fixture(scope="module")
def client(analyzer, tmp_path_factory):
    cfg = ServeConfig(tmp_dir=tmp_path_factory.mktemp("edges_uploads"), max_upload_bytes=2_000_000)
    with TestClient(create_app(analyzer, cfg)) as c:
        yield c


def _explanation(recording, method):
    values = np.zeros((1, len(recording.leads), recording.n_samples))
    return types.SimpleNamespace(attributions=values, fs=recording.fs, leads=tuple(recording.leads), method=method,
                                 n_steps=8, baseline="zero", lead_resolved=True)


def test_waiting_attributions_do_not_hold_up_plain_predictions(analyzer, monkeypatch):
    """Attributions run one at a time; those waiting their turn sat each in a thread of the event
    loop's shared pool, so a few of them left no thread for the reading and preparing of a plain
    prediction, which waited for all of them."""
    gate, entered = threading.Event(), threading.Event()

    def slow_explain(recording, model, *, labels, method="ig", **_):
        entered.set()
        gate.wait(10)
        return _explanation(recording, method)

    monkeypatch.setitem(sys.modules, "ecgfounder.explain", types.SimpleNamespace(explain=slow_explain))
    app = create_app(analyzer, ServeConfig(max_queue=32))
    svc = app.state.service

    async def go() -> float:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(4))  # a small machine's pool
        await svc.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
                slow = [asyncio.create_task(c.post("/v1/predict?attribution=true&attribution_method=gradcam",
                                                   json=sine_signal(seed=k))) for k in range(6)]
                deadline = time.monotonic() + 10
                while not entered.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.2)  # the others reach their turn's wait
                t0 = time.perf_counter()
                try:
                    plain = await asyncio.wait_for(c.post("/v1/predict", json=sine_signal(seed=9)), 3)
                finally:
                    gate.set()
                took = time.perf_counter() - t0
                assert plain.status_code == 200, plain.text
                assert all(r.status_code == 200 for r in await asyncio.gather(*slow))
                return took
        finally:
            gate.set()
            await svc.stop()

    assert asyncio.run(go()) < 1.0


def test_a_recording_too_long_to_explain_is_still_shown(client):
    """A 12-lead recording of 370 s (within max_record_s, 600 s) asked with its attribution, as the
    viewer asks every recording, was refused whole (422), in the library's terms
    ("max_windows=36; ... recording.replace(...)"): the viewer could not show it at all.  It is
    answered, its attribution unavailable with the reason in the request's terms."""
    rng = np.random.default_rng(0)
    body = {"signal": np.round(rng.normal(0, 0.2, (12, 370 * 25)), 3).tolist(), "fs": 25.0,
            "leads": sine_signal()["leads"]}
    r = client.post("/v1/predict?signal=true&attribution=true&attribution_method=gradcam&start=360", json=body)
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["record"]["n_windows"] == 37 and a["signal"]["start_s"] == 360.0
    at = a["attribution"]
    assert at["available"] is False and at["label"], at
    assert "at most 360 s" in at["note"] and "370 s" in at["note"], at["note"]
    assert "max_windows" not in at["note"] and "recording.replace" not in at["note"]


def test_the_schema_lists_what_each_endpoint_takes_and_answers(analyzer):
    """/openapi.json listed 'member' for /v1/predict/batch, which refuses it whatever its value, and
    413/422/429/504 for GET /v1/model and /v1/labels, which answer none of them; the 401 named the
    command line's flag (--token), which a client cannot set."""
    with TestClient(create_app(analyzer, ServeConfig(token="s3cret"))) as c:
        paths = c.get("/openapi.json").json()["paths"]
        unauthorized = c.post("/v1/predict", json=sine_signal()).json()["detail"]
        member = c.post("/v1/predict/batch?member=0", json={"records": [sine_signal()]},
                        headers={"Authorization": "Bearer s3cret"})
    names = lambda op: {p["name"] for p in op.get("parameters", [])}  # noqa: E731
    assert "member" in names(paths["/v1/predict"]["post"]) and "member" not in names(paths["/v1/predict/batch"]["post"])
    for path in ("/v1/model", "/v1/labels"):
        assert set(paths[path]["get"]["responses"]) == {"200", "401"}, paths[path]["get"]["responses"]
    assert "--" not in unauthorized and "Bearer" in unauthorized
    assert member.status_code == 422 and "leave member out" in member.json()["detail"]


def test_an_inline_signal_with_a_lead_named_twice_or_unnamed_is_refused(client):
    """Rows named 'II' and 'ii' (one lead) or '' were analysed without a word: which row the model
    saw was left unsaid.  Refused in the JSON body's terms."""
    body = sine_signal()
    for extra, said in (("ii", "leads[1] and leads[12] are both lead II ('II', 'ii')"), (" ", "leads[12] is empty")):
        r = client.post("/v1/predict", json={**body, "signal": body["signal"] + [body["signal"][0]],
                                             "leads": body["leads"] + [extra]})
        assert r.status_code == 422 and said in r.json()["detail"] and "\n" not in r.json()["detail"], r.text
