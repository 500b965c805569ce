"""The HTTP service: endpoints, schema, errors, limits, auth, admission and dynamic batching."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from ecgfounder.labels import load_labels  # noqa: E402
from ecgfounder.serve import ServeConfig, create_app  # noqa: E402

from servehelpers import DATA, MUSE, STANDARD_12, WFDB, hdf5_batch, sine_signal, zip_bytes  # noqa: E402

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE RestingECG [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>
<RestingECG><PatientDemographics><PatientID>&f;</PatientID></PatientDemographics></RestingECG>
"""


@pytest.fixture(scope="module")
def tmp_uploads(tmp_path_factory):
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def client(analyzer, tmp_uploads):
    with TestClient(create_app(analyzer, ServeConfig(tmp_dir=tmp_uploads, max_upload_bytes=2_000_000))) as c:
        yield c


def _upload(path):
    return {"file": (path.name, path.read_bytes(), "application/octet-stream")}


def test_predict_file_answers_the_documented_schema(client, tiny_ckpt, tmp_uploads):
    r = client.post("/v1/predict", files=_upload(MUSE), params={"embedding": "true", "signal": "true"})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["schema_version"] == "1.2"  # 1.1: batch items gained status and member; 1.2: quality.words
    assert a["record"]["filename"] == MUSE.name and a["record"]["format"] == "muse"
    assert a["model"]["weights_sha256"] == hashlib.sha256(tiny_ckpt.read_bytes()).hexdigest()
    assert a["model"]["contract"]["fs"] == 500.0 and len(a["model"]["contract"]["leads"]) == 12
    assert [s["label"] for s in a["labels"]] == list(load_labels())  # every output, in output order
    probs = {s["label"]: s for s in a["labels"]}
    assert a["findings"], "the tiny model's biased head puts some labels above 0.5"
    for f in a["findings"]:
        assert probs[f["label"]]["above_threshold"] and f["probability"] >= f["threshold"]
    assert [f["probability"] for f in a["findings"]] == sorted((f["probability"] for f in a["findings"]), reverse=True)
    assert sum(s["above_threshold"] for s in a["labels"]) == len(a["findings"])
    assert len(a["embedding"]) == 32  # the tiny model's feature width
    assert a["signal"]["fs"] == 250.0 and len(a["signal"]["data"]) == 12 and len(a["signal"]["data"][0]) == 2500
    assert a["quality"]["available"] and a["quality"]["source"] == "ecgfounder.quality"
    assert a["quality"]["summary"] == ("good" if a["quality"]["good"] else ";".join(a["quality"]["flags"])) or a["quality"]["flags"]
    assert a["attribution"] is None  # not requested
    assert list(tmp_uploads.iterdir()) == []  # nothing kept after the answer


def test_wfdb_pair_json_signal_and_batch(client):
    hea, mat = WFDB.with_suffix(".hea"), WFDB.with_suffix(".mat")
    r = client.post("/v1/predict", files=[("file", (hea.name, hea.read_bytes())), ("file", (mat.name, mat.read_bytes()))])
    assert r.status_code == 200, r.text
    assert r.json()["record"]["id"] == "E07500" and r.json()["record"]["format"] == "wfdb"

    body = sine_signal(seconds=20.5)
    body["signal"][8] = [0.0] * len(body["signal"][8])  # V3 disconnected
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["record"]["format"] == "json" and r.json()["record"]["n_windows"] == 3
    q = r.json()["quality"]
    assert "flat:V3" in q["flags"] and q["flagged_leads"] == ["V3"] and q["good"] is False
    # each flag in words (the viewer showed bare codes), as the package's list of checks words it
    from ecgfounder.signal.quality import CHECKS

    assert q["words"]["flat:V3"] == "V3: " + CHECKS["flat"][0] and set(q["words"]) == set(q["flags"]), q

    files = [("file", (MUSE.name, MUSE.read_bytes())), ("file", ("broken.xml", b"<RestingECG><Waveform>"))]
    r = client.post("/v1/predict/batch", files=files)
    assert r.status_code == 200, r.text
    b = r.json()
    assert (b["n_ok"], b["n_failed"]) == (1, 1)
    bad = next(it for it in b["items"] if not it["ok"])
    assert bad["name"] == "broken.xml" and bad["error"].startswith("broken.xml")


def test_wfdb_record_with_a_third_signal_file_is_one_record(client):
    """PTB's header names s0010_re.dat and s0010_re.xyz: the three files are one recording, not two."""
    ptb = DATA / "ptbdb" / "s0010_re"
    files = [("file", (ptb.name + ext, ptb.with_name(ptb.name + ext).read_bytes())) for ext in (".hea", ".dat", ".xyz")]
    r = client.post("/v1/predict", files=files)
    assert r.status_code == 200, r.text
    assert r.json()["record"]["id"] == "s0010_re" and len(r.json()["record"]["leads"]) == 15


def test_wfdb_record_with_its_annotation_file_is_one_record(client):
    """A WFDB record uploaded whole (.hea, .mat and its .atr annotations, as PhysioNet ships it) was
    two recordings: /v1/predict refused it and the batch failed the .atr as 'unknown ECG file type'.
    The annotation travels with its record; a file of an ECG format of the same name stays its own."""
    hea, mat = (WFDB.with_suffix(s) for s in (".hea", ".mat"))
    files = [("file", (p.name, p.read_bytes())) for p in (hea, mat)] + [("file", ("E07500.atr", b"\x00\x01annotations"))]
    r = client.post("/v1/predict", files=files)
    assert r.status_code == 200, r.text
    assert r.json()["record"]["id"] == "E07500"
    b = client.post("/v1/predict/batch", files=files + [("file", ("E07500.xml", MUSE.read_bytes()))]).json()
    assert [(it["name"], it["status"]) for it in b["items"]] == [("E07500.hea", "ok"), ("E07500.xml", "ok")]


def test_the_record_says_which_leads_were_derived_on_reading(client):
    """A GE MUSE file (8 leads stored) was answered as a recording of 12 leads, a 2-lead Holter as one
    of 6, with nothing telling the leads computed on reading from those in the file."""
    muse = client.post("/v1/predict", files={"file": (MUSE.name, MUSE.read_bytes())}).json()["record"]
    wfdb = client.post("/v1/predict", files=[("file", (p.name, p.read_bytes())) for p in
                                             (WFDB.with_suffix(".hea"), WFDB.with_suffix(".mat"))]).json()["record"]
    assert muse["derived_leads"] == ["III", "aVR", "aVL", "aVF"] and len(muse["leads"]) == 12
    assert wfdb["derived_leads"] == [] and len(wfdb["leads"]) == 12


def test_a_one_lead_model_is_fed_the_lead_asked_for(client):
    """A recording without lead I (MIT-BIH: II and V5) could not be analysed by a lead-I model: its error
    named no fix the request could follow.  The query parameter lead feeds another lead (refused by
    name on a 12-lead model)."""
    import torch

    from ecgfounder.models.net1d import Net1D, Net1DConfig
    from ecgfounder.serve.adapter import Analyzer
    from ecgfounder.signal.preprocess import PreprocessContract

    model = Net1D(Net1DConfig(in_channels=1, base_filters=8, filter_list=(16,), m_blocks_list=(1,), kernel_size=8,
                              groups_width=8, n_classes=150))
    model.labels, model.contract = load_labels(), PreprocessContract(leads=("I",))
    t = np.arange(2500) / 250
    csv = ("II,V5\n" + "\n".join(f"{a:.4f},{b:.4f}" for a, b in zip(np.sin(7.5 * t), np.cos(7.5 * t)))).encode()
    with torch.no_grad(), TestClient(create_app(Analyzer(model))) as one:
        refused = one.post("/v1/predict?fs=250", files={"file": ("h.csv", csv)})
        fed = one.post("/v1/predict?fs=250&lead=II&attribution=true&attribution_method=gradcam",
                       files={"file": ("h.csv", csv)})
    assert refused.status_code == 422 and refused.json()["detail"].endswith("with the query parameter lead=II.")
    assert fed.status_code == 200, fed.text
    assert "feeding lead II to a model trained on lead I" in " ".join(fed.json()["notes"])
    assert fed.json()["attribution"]["leads"] == ["II"]
    twelve = client.post("/v1/predict?lead=II", files={"file": (MUSE.name, MUSE.read_bytes())})
    assert twelve.status_code == 422 and "leave lead out" in twelve.json()["detail"]


def test_an_inline_signal_is_told_the_lead_fix_as_a_file_is():
    """The query parameter lead feeds an inline JSON signal as it feeds a file, but a JSON signal
    without the model's lead was refused with no fix (the file's error ends 'with the query parameter
    lead=II'), and a body field 'lead' was 'unknown field' with nothing saying where lead goes."""
    import torch

    from ecgfounder.models.net1d import Net1D, Net1DConfig
    from ecgfounder.serve.adapter import Analyzer
    from ecgfounder.signal.preprocess import PreprocessContract

    model = Net1D(Net1DConfig(in_channels=1, base_filters=8, filter_list=(16,), m_blocks_list=(1,), kernel_size=8,
                              groups_width=8, n_classes=150))
    model.labels, model.contract = load_labels(), PreprocessContract(leads=("I",))
    t = np.arange(2500) / 250
    body = {"signal": [np.sin(7.5 * t).round(4).tolist(), np.cos(7.5 * t).round(4).tolist()], "fs": 250,
            "leads": ["II", "V5"], "id": "h"}
    with torch.no_grad(), TestClient(create_app(Analyzer(model))) as one:
        refused = one.post("/v1/predict", json=body)
        in_batch = one.post("/v1/predict/batch", json={"records": [body]})
        fed = one.post("/v1/predict?lead=II", json=body)
        in_body = one.post("/v1/predict/batch", json={"records": [{**body, "lead": "II"}]})
    assert refused.status_code == 422 and refused.json()["detail"].endswith("with the query parameter lead=II."), refused.text
    assert in_batch.json()["items"][0]["error"].endswith("with the query parameter lead=II.")
    assert fed.status_code == 200 and "feeding lead II to a model trained on lead I" in " ".join(fed.json()["notes"])
    assert in_body.status_code == 422 and "lead is a query parameter" in in_body.json()["detail"], in_body.text
    assert "/v1/predict/batch?lead=" in in_body.json()["detail"]


def test_a_wfdb_header_uploaded_alone_says_to_upload_its_signal_file(client):
    """The reader's fix, 'put the two files side by side', means nothing to a client uploading files;
    it is told to send the signal file in the same request (or beside the header in the zip)."""
    hea = WFDB.with_suffix(".hea")
    r = client.post("/v1/predict", files={"file": (hea.name, hea.read_bytes())})
    text = r.json()["detail"]
    assert r.status_code == 422 and "E07500.mat is missing" in text and "side by side" not in text, text
    assert "in the same request (each file a multipart field 'file')" in text, text


def test_a_zip_members_failure_names_its_file(client):
    """A recording of a zip that fails after reading (too few leads) was 'clinic.zip#1: missing lead(s)
    ...': nothing said which of the archive's files it was.  The error names the file in the archive."""
    t = np.arange(2500) / 250
    one_lead = "I\n" + "\n".join(f"{v:.4f}" for v in np.sin(2 * np.pi * 1.2 * t))
    archive = zip_bytes({"a.xml": MUSE.read_bytes(), "ward 3/patch.csv": one_lead.encode()})
    b = client.post("/v1/predict/batch?fs=250", files={"file": ("clinic.zip", archive)}).json()
    assert [(it["name"], it["status"]) for it in b["items"]] == [("clinic.zip#0", "ok"), ("clinic.zip#1", "failed")]
    assert b["items"][1]["error"].startswith("clinic.zip#1 (ward 3/patch.csv in the zip archive): missing lead(s)")
    r = client.post("/v1/predict?fs=250&member=1", files={"file": ("clinic.zip", archive)})
    assert r.status_code == 422 and r.json()["detail"].startswith("clinic.zip#1 (ward 3/patch.csv in the zip archive)")


def test_labels_health_metrics_openapi(client):
    labels = client.get("/v1/labels").json()
    assert len(labels["labels"]) == 150 and labels["labels"][0]["index"] == 0
    assert {x["threshold_source"] for x in labels["labels"]} == {"default"}
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert client.head("/healthz").status_code == client.head("/readyz").status_code == 200  # (a probe's HEAD was 405)
    client.post("/v1/predict", json=sine_signal())
    text = client.get("/metrics").text
    assert 'ecgfounder_requests_total{route="/v1/predict",status="200"}' in text
    assert "ecgfounder_batch_windows_count" in text
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert "Prediction" in spec["components"]["schemas"] and "QualityReport" in spec["components"]["schemas"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text and "https://" not in docs.text  # served offline, from the package


@pytest.mark.parametrize(
    "name, content, expect",
    [
        ("broken.xml", b"<RestingECG><Waveform>", "broken.xml"),
        ("bomb.xml", BOMB, "bomb.xml"),
        ("notes.txt2", b"hello", "unknown ECG file type"),
        ("empty.dcm", b"", "empty"),
        ("E1.dat", b"\x00" * 100, "without its header"),
    ],
    ids=["malformed", "entity_bomb", "unknown_type", "empty", "dat_without_header"],
)
def test_bad_files_get_422_with_one_line(client, tmp_uploads, name, content, expect):
    t0 = time.perf_counter()
    r = client.post("/v1/predict", files={"file": (name, content)})
    assert time.perf_counter() - t0 < 5
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert expect in detail and "\n" not in detail and str(tmp_uploads) not in detail
    assert list(tmp_uploads.iterdir()) == []


def test_bad_json_and_requests_get_422(client):
    for body, expect in [
        ({"signal": [[0.0] * 5000] * 12, "fs": 500}, "leads"),
        ({"signal": [[0.0] * 5000] * 2, "fs": 500, "leads": ["I"]}, "2 signal rows but 1 lead"),
        ({"signal": [[0.0] * 100], "fs": 500, "leads": ["I"]}, "lasts 0.200 s"),
        ({"signal": [[0.0] * 5000], "fs": -1, "leads": ["I"]}, "fs"),
    ]:
        r = client.post("/v1/predict", json=body)
        assert r.status_code == 422 and expect in r.json()["detail"], (body.get("fs"), r.text)
    two = [("file", (MUSE.name, MUSE.read_bytes())), ("file", ("b.xml", MUSE.read_bytes()))]
    r = client.post("/v1/predict", files=two)
    assert r.status_code == 422 and "/v1/predict/batch" in r.json()["detail"]
    r = client.post("/v1/predict", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "content type" in r.json()["detail"]


def test_body_over_the_limit_gets_413(client):
    r = client.post("/v1/predict", files={"file": ("big.csv", b"0," * 1_100_000)})
    assert r.status_code == 413 and "limit of 2000000 bytes" in r.json()["detail"]
    assert "CLI" not in r.json()["detail"]  # the server's setting, not a flag the client could pass


def test_token_required(analyzer):
    with TestClient(create_app(analyzer, ServeConfig(token="s3cret"))) as c:
        r = c.post("/v1/predict", json=sine_signal())
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/v1/predict", json=sine_signal(), headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/healthz").status_code == 200  # probes stay open
        ok = c.post("/v1/predict", json=sine_signal(), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def _gate_forward(monkeypatch, analyzer):
    """Make the forward pass wait for ``gate`` (after the warm-up), recording each batch size."""
    gate, sizes = threading.Event(), []
    real = analyzer.forward

    def forward(x, max_batch=32):
        sizes.append(x.shape[0])
        gate.wait(10)
        return real(x, max_batch)

    monkeypatch.setattr(analyzer, "forward", forward)
    return gate, sizes


async def _concurrent(app, bodies, gate, release_when, sizes=None):
    """POST ``bodies`` concurrently in-process; opens ``gate`` once ``release_when(tasks, service)``
    holds (polled; at most 20 s).  Returns the responses and the number of forward passes they took
    (the warm-up pass excluded)."""
    svc = app.state.service
    gate.set()  # the warm-up pass goes through
    await svc.start()
    gate.clear()
    if sizes is not None:
        sizes.clear()
    calls0 = svc.analyzer.forward_calls
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        tasks = [asyncio.create_task(c.post("/v1/predict", json=b)) for b in bodies]
        deadline = time.monotonic() + 20
        while not release_when(tasks, svc) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        gate.set()
        out = await asyncio.gather(*tasks)
    await svc.stop()
    return out, svc.analyzer.forward_calls - calls0


def test_queue_full_gets_429_with_retry_after(analyzer, monkeypatch):
    gate, _ = _gate_forward(monkeypatch, analyzer)
    app = create_app(analyzer, ServeConfig(max_concurrency=1, max_queue=1, retry_after_s=3))
    # the gate opens once two requests have been answered: those must be the refused ones
    rs, _ = asyncio.run(_concurrent(app, [sine_signal(seed=k) for k in range(4)], gate,
                                    lambda tasks, svc: sum(t.done() for t in tasks) >= 2))
    codes = sorted(r.status_code for r in rs)
    assert codes == [200, 200, 429, 429], [r.text for r in rs]
    busy = next(r for r in rs if r.status_code == 429)
    assert busy.headers["retry-after"] == "3" and "retry after 3 s" in busy.json()["detail"]


def test_timeout_gets_504(analyzer, monkeypatch):
    gate, _ = _gate_forward(monkeypatch, analyzer)
    app = create_app(analyzer, ServeConfig(request_timeout_s=0.2))
    (r,), _ = asyncio.run(_concurrent(app, [sine_signal()], gate, lambda tasks, svc: tasks[0].done()))
    assert r.status_code == 504 and "request_timeout_s" in r.json()["detail"]


def test_a_batch_stops_at_the_request_time_limit_keeping_what_it_answered(analyzer, monkeypatch, tmp_path):
    """request_timeout_s bounded each recording of a batch file, not the request: a file of N
    recordings could take N times the limit.  The batch now ends at the limit: the recordings
    answered by then are kept, the one in progress and those not reached are failed items saying so."""
    real, gate, calls = analyzer.prepare, threading.Event(), []

    def prepare(rec, lead=None):  # the third recording's preparation hangs until the test ends
        calls.append(rec)
        if len(calls) >= 3:
            gate.wait(10)
        return real(rec, lead)

    monkeypatch.setattr(analyzer, "prepare", prepare)
    try:
        with TestClient(create_app(analyzer, ServeConfig(request_timeout_s=1.5, tmp_dir=tmp_path))) as c:
            t0 = time.perf_counter()
            r = c.post("/v1/predict/batch", files={"file": ("four.h5", hdf5_batch(4))})
            took = time.perf_counter() - t0
            gate.set()  # (the hung preparation ends before the app shuts down, which waits for it)
    finally:
        gate.set()
    a = r.json()
    assert r.status_code == 200 and took < 2.8, (took, r.text[:300])  # (each recording its own 1.5 s: over 3 s)
    assert [(it["name"], it["status"]) for it in a["items"]] == [
        ("four.h5#0", "ok"), ("four.h5#1", "ok"), ("four.h5#2", "failed"), ("four.h5#3", "failed")]
    assert a["n_ok"] == 2 and a["n_failed"] == 2
    said = [it["error"] for it in a["items"][2:]]
    assert said[0].startswith("four.h5#2: not analysed: the batch request reached its time limit of 1.5 s "
                              "(the server's request_timeout_s) before it was analysed; the recordings answered "
                              "are kept"), said[0]
    assert said[1].startswith("four.h5#3: not analysed: the batch request reached its time limit") and \
        "before it was read" in said[1]


def test_dynamic_batching_batches_and_keeps_answers(analyzer, monkeypatch):
    bodies = [sine_signal(seed=k) for k in range(8)]
    alone = {}  # each record through the model on its own
    for b in bodies[:3]:
        prep = analyzer.prepare(analyzer.from_array(b["signal"], b["fs"], b["leads"], b["id"]))
        alone[b["id"]] = analyzer.forward(prep.windows)[0].mean(axis=0)
    gate, sizes = _gate_forward(monkeypatch, analyzer)
    app = create_app(analyzer, ServeConfig(batch_wait_ms=200, max_batch_windows=32))
    # the gate opens once all 8 windows are in a forward pass or waiting for the next one
    rs, calls = asyncio.run(_concurrent(app, bodies, gate, lambda tasks, svc: sum(sizes) + svc.batcher.pending() == 8,
                                        sizes=sizes))
    assert all(r.status_code == 200 for r in rs)
    # 8 requests, 1 window each: at most 2 forward passes (one may start before the rest arrive)
    assert sum(sizes) == 8 and len(sizes) <= 2 and max(sizes) >= 4, sizes
    assert calls == len(sizes)
    for r in rs:
        a = r.json()
        if a["record"]["id"] in alone:
            got = np.array([s["probability"] for s in a["labels"]])
            np.testing.assert_allclose(got, alone[a["record"]["id"]], atol=1e-5)


def test_failing_quality_check_does_not_cost_the_answer(client, monkeypatch):
    import ecgfounder.signal.quality as quality

    def broken(recording):
        raise RuntimeError("boom on purpose")

    monkeypatch.setattr(quality, "assess", broken)
    r = client.post("/v1/predict", json=sine_signal())
    assert r.status_code == 200, r.text
    q = r.json()["quality"]
    assert q["available"] is False and "boom on purpose" in q["note"]


def test_attribution_through_explain(client):
    pytest.importorskip("captum")
    r = client.post("/v1/predict", files=_upload(MUSE), params={"attribution": "true", "attribution_method": "gradcam"})
    assert r.status_code == 200, r.text
    a = r.json()
    at = a["attribution"]
    assert at["available"] and at["method"] == "gradcam" and at["label"] == a["findings"][0]["label"]
    assert at["fs"] == 250.0 and len(at["values"]) == 12 and len(at["values"][0]) == 2500
    assert max(max(row) for row in at["values"]) == 1.0 and abs(sum(at["lead_share"].values()) - 1) < 1e-3
    r = client.post("/v1/predict", files=_upload(MUSE), params={"attribution": "true", "attribution_method": "bogus"})
    assert r.status_code == 422 and "bogus" in r.json()["detail"]


def test_calibration_and_thresholds_file(tiny_ckpt, tmp_path):
    pytest.importorskip("sklearn")
    from ecgfounder.explain.calibration import Calibration, attach_calibration
    from ecgfounder.models.loading import load_model
    from ecgfounder.serve import Analyzer

    model = load_model(tiny_ckpt)
    labels = list(model.labels)
    attach_calibration(model, Calibration(method="temperature", labels=tuple(labels), temperatures=(2.0,) * 150))
    csv = tmp_path / "thresholds.csv"
    csv.write_text("label,threshold\n" + f"{labels[0]},0.01\n{labels[1]},\n")  # one set, one NaN
    analyzer = Analyzer(model, thresholds_file=csv)
    with TestClient(create_app(analyzer, ServeConfig())) as c:
        a = c.post("/v1/predict", json=sine_signal()).json()
    s0, s1 = a["labels"][0], a["labels"][1]
    assert (s0["threshold"], s0["threshold_source"]) == (0.01, "file")
    assert (s1["threshold"], s1["threshold_source"]) == (0.5, "default")
    for s in a["labels"]:
        p = s["probability"]
        expect = 1 / (1 + ((1 - p) / p) ** 0.5)  # sigmoid(logit(p) / 2)
        assert abs(s["calibrated_probability"] - expect) < 1e-6
        assert s["above_threshold"] == (s["calibrated_probability"] >= s["threshold"])
    assert all(f["calibrated_probability"] >= f["threshold"] for f in a["findings"])


def test_labels_a_calibration_leaves_unchanged_have_no_calibrated_probability(tiny_ckpt):
    """A label fitted on too few positives keeps its model score (temperature 1): the answer gave that
    score as its calibrated probability, as if it had been calibrated."""
    from ecgfounder.explain.calibration import Calibration, attach_calibration
    from ecgfounder.models.loading import load_model
    from ecgfounder.serve import Analyzer

    model = load_model(tiny_ckpt)
    temps = (1.0, 1.0) + (2.0,) * 148  # labels 0 and 1 left as they were
    attach_calibration(model, Calibration(method="temperature", labels=tuple(model.labels), temperatures=temps,
                                          fitted_on={"unfitted": [model.labels[0], model.labels[1]]}))
    with TestClient(create_app(Analyzer(model), ServeConfig())) as c:
        a = c.post("/v1/predict", json=sine_signal()).json()
    assert [s["calibrated_probability"] for s in a["labels"][:2]] == [None, None]
    assert all(s["calibrated_probability"] is not None for s in a["labels"][2:])
    s0 = a["labels"][0]
    assert s0["above_threshold"] == (s0["probability"] >= s0["threshold"])


def test_batch_answers_for_each_recording_of_an_archive_or_batch_file(client):
    """A zip of ECG files and an HDF5 batch sent to /v1/predict/batch: one item per recording
    (name#k), a bad member its own failed item; /v1/predict refuses such a file with the way to send it."""
    pytest.importorskip("h5py")
    pair, three = zip_bytes({"a.xml": MUSE.read_bytes(), "b.xml": MUSE.read_bytes()}), hdf5_batch(3)
    files = [("file", ("pair.zip", pair)), ("file", ("three.h5", three)),
             ("file", (MUSE.name, MUSE.read_bytes()))]
    r = client.post("/v1/predict/batch", files=files)
    assert r.status_code == 200, r.text
    b = r.json()
    names = [it["name"] for it in b["items"]]
    assert names == ["pair.zip#0", "pair.zip#1", "three.h5#0", "three.h5#1", "three.h5#2", MUSE.name], names
    assert b["n_ok"] == 6 and b["n_failed"] == 0
    ok = {it["name"]: it["result"] for it in b["items"]}
    # each recording's own format, not the container's (the zip was announced as "npz")
    assert [ok[k]["record"]["format"] for k in ("pair.zip#0", "three.h5#2", MUSE.name)] == ["muse", "hdf5", "muse"]
    member, plain = ([x["probability"] for x in ok[k]["labels"]] for k in ("pair.zip#0", MUSE.name))
    np.testing.assert_allclose(member, plain, atol=1e-6)  # the archive's member is the same ECG (batched apart)
    r = client.post("/v1/predict", files={"file": ("pair.zip", pair)})
    assert r.status_code == 422
    assert r.json()["detail"] == ("pair.zip holds several recordings and one is analysed here; send the file to "
                                  "/v1/predict/batch, which answers for each, or pick one with the query parameter "
                                  "member (0 for the first).")
    named = client.post("/v1/predict/batch", files=[("file", ("pair.ecgexport", pair))]).json()
    assert [(it["name"], it["ok"]) for it in named["items"]] == [("pair.ecgexport#0", True), ("pair.ecgexport#1", True)]
    bad = zip_bytes({"a.xml": MUSE.read_bytes(), "b.xml": b"<RestingECG><Waveform>", "c.xml": MUSE.read_bytes()})
    b = client.post("/v1/predict/batch", files=[("file", ("bad.zip", bad))]).json()
    # the member after the bad one is analysed too; the bad one is an item in its place, named
    assert [(it["name"], it["ok"]) for it in b["items"]] == [("bad.zip#0", True), ("bad.zip#1", False),
                                                               ("bad.zip#2", True)]
    assert b["items"][1]["error"].startswith("bad.zip: b.xml in the zip archive: ")
    assert "ecgfounder-serve-" not in b["items"][1]["error"]
    assert b["items"][2]["result"]["record"]["filename"] == "bad.zip#2"
    # member=k counts the bad member as the batch does: 1 is its error, 2 the recording after it
    r = client.post("/v1/predict?member=1", files={"file": ("bad.zip", bad)})
    assert r.status_code == 422 and r.json()["detail"].startswith("bad.zip: b.xml in the zip archive: malformed XML")
    r = client.post("/v1/predict?member=2", files={"file": ("bad.zip", bad)})
    assert r.status_code == 200 and r.json()["record"]["filename"] == "bad.zip#2"
    first_bad = zip_bytes({"a.xml": b"<RestingECG><Waveform>", "b.xml": MUSE.read_bytes()})
    b = client.post("/v1/predict/batch", files=[("file", ("first.zip", first_bad))]).json()
    assert [(it["name"], it["ok"]) for it in b["items"]] == [("first.zip#0", False), ("first.zip#1", True)]


def test_predict_one_member_of_a_file_of_several(client):
    """/v1/predict?member=k answers for recording k of a zip or an HDF5 batch (as /v1/predict/batch
    answers for it, with the signal and attribution options of a single answer); past the last, on
    an inline signal and on the batch endpoint it is refused in one line."""
    pytest.importorskip("h5py")
    pair, three = zip_bytes({"a.xml": MUSE.read_bytes(), "b.ecg.xml": MUSE.read_bytes()}), hdf5_batch(3, seed=1)
    whole = client.post("/v1/predict/batch", files=[("file", ("three.h5", three))]).json()
    r = client.post("/v1/predict?member=2&signal=true", files={"file": ("three.h5", three)})
    assert r.status_code == 200, r.text
    one = r.json()
    assert one["record"]["filename"] == "three.h5#2" and one["signal"] is not None
    np.testing.assert_allclose([x["probability"] for x in one["labels"]],
                               [x["probability"] for x in whole["items"][2]["result"]["labels"]], atol=1e-6)
    r = client.post("/v1/predict?member=1", files={"file": ("pair.zip", pair)})
    assert r.status_code == 200, r.text
    assert (r.json()["record"]["id"], r.json()["record"]["format"]) == ("b.ecg", "muse")
    for query, name, data, said in [
        ("member=3", "three.h5", three, "three.h5 holds 3 recording(s); member=3 is past the last (give 0 to 2)."),
        ("member=2", "pair.zip", pair, "pair.zip holds 2 recording(s); member=2 is past the last (give 0 to 1)."),
        ("member=-1", "pair.zip", pair, "member"),
        ("member=x", "pair.zip", pair, "member"),
    ]:
        r = client.post(f"/v1/predict?{query}", files={"file": (name, data)})
        assert r.status_code == 422 and said in r.json()["detail"] and "\n" not in r.json()["detail"], (query, r.text)
    r = client.post("/v1/predict?member=0", files={"file": (MUSE.name, MUSE.read_bytes())})
    assert r.status_code == 200 and r.json()["record"]["filename"] == f"{MUSE.name}#0"
    r = client.post("/v1/predict?member=0", json=sine_signal())
    assert r.status_code == 422 and "leave member out" in r.json()["detail"]
    r = client.post("/v1/predict/batch?member=0", files=[("file", ("pair.zip", pair))])
    assert r.status_code == 422 and "leave member out" in r.json()["detail"]


def test_the_viewer_gets_a_minute_of_a_long_recording_of_few_leads(analyzer):
    """The signal for display was the first 10 s whatever the recording: a phone or Holter ECG of one
    or two leads showed 10 s of its minute.  A recording of 1-3 stored leads gets its first minute
    (its stored leads only), a 12-lead one its first 10 s, and the attribution the same span."""
    import types

    import ecgfounder
    from ecgfounder.recording import Recording
    from ecgfounder.serve.adapter import _attribution_dict, display_span

    mit = ecgfounder.read(DATA / "mitdb" / "100.hea")  # 60 s, MLII and V5 at 360 Hz
    shown = analyzer.display_signal(mit, 250.0)
    assert shown["leads"] == ["II", "V5"] and len(shown["data"][0]) == 60 * 250 and display_span(mit) == (0.0, 60.0)
    rng = np.random.default_rng(0)
    twelve = Recording(signal=rng.normal(0, 0.1, (12, 20 * 500)), fs=500.0, leads=STANDARD_12)
    assert len(analyzer.display_signal(twelve, 250.0)["data"][0]) == 10 * 250
    derived = Recording(signal=rng.normal(0, 0.1, (6, 35 * 200)), fs=200.0, leads=STANDARD_12[:6],
                        meta={"derived_leads": ["III", "aVR", "aVL", "aVF"]})  # a 2-lead file read as 6
    got = analyzer.display_signal(derived, 250.0)
    assert got["leads"] == ["I", "II"] and len(got["data"][0]) == 35 * 200  # (never above the recording's rate)
    expl = types.SimpleNamespace(attributions=np.ones((1, 2, 60 * 360)), fs=360.0, leads=("II", "V5"), method="ig")
    assert len(_attribution_dict(expl, "x", 250.0, display_span(mit), 60.0)["values"][0]) == 60 * 250


def test_a_long_recording_is_shown_page_by_page_with_where_the_model_looked(client, analyzer):
    """The viewer saw the first 10 s of a long 12-lead recording and the attribution there only:
    where the model looked later in it was never shown.  ``start=`` gives the page from that
    second (signal and attribution alike, the values scaled by the whole recording's peak), and the
    attribution says each page's share of the whole, so the viewer can send the reader there."""
    import types

    from ecgfounder.serve.adapter import _attribution_dict
    from ecgfounder.signal.filters import resample

    body = sine_signal(seconds=35.0)
    x = np.asarray(body["signal"])
    r = client.post("/v1/predict?signal=true&start=20", json=body)
    assert r.status_code == 200, r.text
    sig = r.json()["signal"]
    assert sig["start_s"] == 20.0 and len(sig["data"][0]) == 10 * 250
    np.testing.assert_allclose(sig["data"], resample(x[:, 20 * 500: 30 * 500], 500.0, 250.0), atol=1e-4)  # 20-30 s
    last = client.post("/v1/predict?signal=true&start=30", json=body).json()["signal"]
    assert last["start_s"] == 30.0 and len(last["data"][0]) == 5 * 250  # cut at the end
    r = client.post("/v1/predict?signal=true&attribution=true&attribution_method=gradcam&start=10", json=body)
    at = r.json()["attribution"]
    assert r.status_code == 200 and at["start_s"] == 10.0 and at["page_s"] == 10.0 and len(at["page_share"]) == 4
    assert abs(sum(at["page_share"]) - 1) < 1e-3 and len(at["values"][0]) == 10 * 250
    for query, said in [("attribution=true&start=35", "start=35 s is not within this 35-s recording; give 0 to 34.998"),
                        ("signal=true&start=40", "start=40 s is not within this 35-s recording"),
                        ("signal=true&start=-1", "start"), ("signal=true&start=nan", "start"),
                        ("start=5", "start=5 picks the page of the signal and attribution shown")]:
        r = client.post(f"/v1/predict?{query}", json=body)
        assert r.status_code == 422 and said in r.json()["detail"] and "\n" not in r.json()["detail"], (query, r.text)

    # planted: all attribution in lead V2 between 23 and 24 s of a 35-s recording at 500 Hz
    a = np.zeros((1, 12, 35 * 500))
    a[0, 7, 23 * 500: 24 * 500] = 2.0
    a[0, 0, 1 * 500: 2 * 500] = 0.5
    expl = types.SimpleNamespace(attributions=a, fs=500.0, leads=tuple(STANDARD_12), method="ig")
    got = _attribution_dict(expl, "x", 250.0, (20.0, 30.0), 10.0)
    assert got["page_share"] == [0.2, 0.0, 0.8, 0.0] and got["start_s"] == 20.0
    v = np.asarray(got["values"])
    assert v.shape == (12, 2500) and v.max() <= 1.0 and got["lead_share"]["V2"] == 1.0
    assert np.flatnonzero(v[7] > 0.5).min() in range(3 * 250 - 2, 3 * 250 + 3)  # 23 s = 3 s into the page
    first = np.asarray(_attribution_dict(expl, "x", 250.0, (0.0, 10.0), 10.0)["values"])
    assert 0.2 < first[0].max() < 0.3  # lead I's 0.5, scaled by the recording's peak (2), not the page's


def test_a_calibration_fitted_for_other_weights_is_not_served(tiny_ckpt):
    """The service read the stored calibration as it was: weights trained further after calibrating
    were served with calibrated probabilities that belonged to the old weights."""
    import torch

    from ecgfounder.explain.calibration import Calibration, attach_calibration
    from ecgfounder.models.loading import load_model
    from ecgfounder.serve import Analyzer

    model = load_model(tiny_ckpt)
    attach_calibration(model, Calibration(method="temperature", labels=tuple(model.labels), temperatures=(2.0,) * 150))
    assert Analyzer(model).calibrate(np.full(150, 0.5)) is not None
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # trained further
    with pytest.raises(ValueError, match="fitted for other weights"):
        Analyzer(model)


def test_what_reading_said_is_in_the_answers_notes(client, tmp_uploads):
    """A lead order assumed for unnamed channels, NaN samples: said on the server's stderr, naming its
    temporary copy, and not in the answer, so the client never heard it."""
    import io
    import warnings

    rng = np.random.default_rng(0)
    x = np.sin(np.linspace(0, 60, 5000))[None, :] * rng.uniform(0.5, 1.5, (12, 1)) + 0.01 * rng.standard_normal((12, 5000))
    x[2, 100:150] = np.nan
    buf = io.BytesIO()
    np.save(buf, x.astype(np.float32))
    with warnings.catch_warnings(record=True) as on_server:
        warnings.simplefilter("always")
        r = client.post("/v1/predict", files={"file": ("x.npy", buf.getvalue())}, params={"fs": 500})
    assert r.status_code == 200, r.text
    # said to the client, not on the server's stderr naming its temporary copy
    assert not [w for w in on_server if str(tmp_uploads) in str(w.message)]
    notes = r.json()["notes"]
    assert notes[0].startswith("x.npy: 12 unnamed channels taken as the standard order I, II, III, aVR, aVL, aVF, V1-V6")
    assert notes[0].endswith("pass the query parameter leads=I,II,... if the file uses another order")
    assert notes[1:] == ["x.npy: 50 missing (NaN) sample(s)", "50 NaN/inf sample(s) replaced by 0"]
    assert str(tmp_uploads) not in " ".join(notes)


def test_a_matlab_upload_of_several_variables_is_read_with_the_key_query_parameter(client, tmp_path):
    """The reader's fix for a file of several candidate variables ('pass key=NAME') had no query
    parameter to give it with."""
    import scipy.io as sio

    from ecgfounder.signal.leads import STANDARD_12

    t = np.arange(5000) / 500
    sig = np.stack([np.sin(2 * np.pi * 1.1 * t + k) for k in range(12)]) * 0.5
    f = tmp_path / "two.mat"
    sio.savemat(f, {"a": sig, "b": sig * 2})
    params = {"fs": 500, "leads": ",".join(STANDARD_12)}
    r = client.post("/v1/predict", files=_upload(f), params=params)
    assert r.status_code == 422 and r.json()["detail"].endswith("pass the query parameter key=NAME"), r.text
    r = client.post("/v1/predict", files=_upload(f), params={**params, "key": "b"})
    assert r.status_code == 200, r.text
    assert r.json()["record"]["id"] == "two"


def test_the_served_weights_file_is_hashed_once_while_unchanged(tiny_ckpt, tmp_path, monkeypatch):
    """Every Analyzer (each start of the service) read the whole weights file for its SHA-256 (~1 s for
    the published 12-lead file); an unchanged file is now answered from the package's hash cache."""
    import os
    import shutil

    import ecgfounder.models.weights as weights
    from ecgfounder.models.loading import load_model
    from ecgfounder.serve import Analyzer

    wfile = shutil.copy(tiny_ckpt, tmp_path / "w.safetensors")
    os.utime(wfile, (time.time() - 60, time.time() - 60))  # (a file written just now is not remembered yet)
    reads, real = [], weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda p, *a, **k: reads.append(p) or real(p, *a, **k))
    model = load_model(tiny_ckpt)
    first, second = Analyzer(model, weights_file=wfile), Analyzer(model, weights_file=wfile)
    assert first.weights_sha256 == second.weights_sha256 == hashlib.sha256(tiny_ckpt.read_bytes()).hexdigest()
    assert len(reads) == 1
