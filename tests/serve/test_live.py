"""The service on a real loopback socket: the upload limit while streaming, and the web viewer in a
real headless Chromium (Playwright driving Debian's chromium; skipped where it is not installed)."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import sys
import time
import types
from urllib.parse import urlparse

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from servehelpers import MUSE, STANDARD_12, WFDB, running_server, zip_bytes  # noqa: E402

from ecgfounder.serve import ServeConfig, create_app  # noqa: E402

LIMIT = 1_000_000
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def live(analyzer, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live_uploads")
    app = create_app(analyzer, ServeConfig(max_upload_bytes=LIMIT, tmp_dir=tmp))
    with running_server(app) as url:
        yield url, tmp


def _connect(url: str) -> socket.socket:
    u = urlparse(url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    return s


def _status(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_declared_200_mb_upload_refused_before_the_body(live):
    url, _ = live
    with _connect(url) as s:
        head = (f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {200 * 1024 * 1024}\r\n\r\n").encode()
        s.sendall(head)  # not a byte of the body
        t0 = time.perf_counter()
        code, raw = _status(s)
        assert code == 413 and time.perf_counter() - t0 < 2
        assert b"exceeds the server's limit" in raw or b"content-length" in raw.lower()


def test_chunked_upload_refused_while_streaming(live):
    url, tmp = live
    with _connect(url) as s:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        pre = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\nContent-Type: text/csv\r\n\r\n'
        s.sendall(b"%x\r\n%s\r\n" % (len(pre), pre))
        piece = b"0," * 32768
        chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
        sent = 0
        s.settimeout(5)
        while sent < 200 * 1024 * 1024:
            if select.select([s], [], [], 0)[0]:  # the server answered
                break
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                break
            sent += len(piece)
        code, raw = _status(s)
    assert code == 413, raw[:200]
    assert sent < 20 * LIMIT  # refused long before 200 MB went out (socket buffers hold a few MB)
    assert list(tmp.iterdir()) == []


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium); the viewer test needs a real browser")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _fake_explain(recording, model, *, labels, method="ig", **_):
    """Stands in for ecgfounder.explain: an Explanation-shaped answer whose attribution sits on V2
    between 5.5 and 6.5 s (where the viewer shows V2: 5–7.5 s), at the recording's rate."""
    fs = recording.fs
    values = np.zeros((1, len(recording.leads), recording.n_samples))
    v2 = list(recording.leads).index("V2")
    values[0, v2, int(5.5 * fs):int(6.5 * fs)] = -2.0  # sign is dropped: |attribution| is shown
    return types.SimpleNamespace(attributions=values, fs=fs, leads=tuple(recording.leads), method=method,
                                 n_steps=8, baseline="zero", lead_resolved=True)


def _region_stats(page, x0_mm, x1_mm, y0_mm, y1_mm):
    """Mean (r, g, b) of a canvas region given in printout millimetres (4 px/mm, 8-mm margin)."""
    return page.evaluate(
        """([x0, x1, y0, y1]) => {
            const c = document.getElementById('ecg'), ctx = c.getContext('2d');
            const d = ctx.getImageData(x0, y0, x1 - x0, y1 - y0).data;
            let r = 0, g = 0, b = 0, n = d.length / 4;
            for (let i = 0; i < d.length; i += 4) { r += d[i]; g += d[i + 1]; b += d[i + 2]; }
            return [r / n, g / n, b / n];
        }""",
        [int((8 + x0_mm) * 4), int((8 + x1_mm) * 4), int((8 + y0_mm) * 4), int((8 + y1_mm) * 4)],
    )


def _analysed(page, files, timeout: int = 20000) -> None:
    """Choose ``files`` in the viewer and wait for its answer ('Done ...')."""
    page.set_input_files("#file", files)
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Done')", timeout=timeout)


def _posts(page) -> list[str]:
    """The paths (after /v1/) of the POST requests ``page`` makes from now on, as they are made."""
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url.split("/v1/")[1]) if r.method == "POST" else None)
    return posts


def _explain_faked(monkeypatch, fn=None) -> None:
    """The service's attribution from ``fn`` (default :func:`_fake_explain`: fast, and where it is known to point)."""
    fake = types.ModuleType("ecgfounder.explain")
    fake.explain = fn or _fake_explain
    monkeypatch.setitem(sys.modules, "ecgfounder.explain", fake)


def test_viewer_in_chromium(live, browser, analyzer, monkeypatch, tmp_path):
    _explain_faked(monkeypatch)
    url, tmp = live
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    external = []
    page.on("request", lambda r: None if r.url.startswith(url) or r.url.startswith(("data:", "blob:")) else external.append(r.url))
    page.goto(url + "/")
    page.set_input_files("#file", str(MUSE))
    page.wait_for_selector("#findings li", timeout=15000)
    canvas = page.locator("#ecg")
    assert canvas.get_attribute("data-traces") == "13"  # 12 lead segments + the rhythm strip
    assert int(canvas.get_attribute("data-shaded")) > 5
    answer = json.loads(page.evaluate("JSON.stringify(last)"))
    assert answer["attribution"]["lead_share"]["V2"] == 1.0 and answer["attribution"]["method"] == "ig (8 steps)" and answer["attribution"]["baseline"] == "zero"
    findings = page.locator("#findings li").all_inner_texts()
    assert [f.split(" ")[0] for f in findings] == [f["label"].split(" ")[0] for f in answer["findings"]]
    assert len(findings) == len(answer["findings"]) > 0
    assert "%" in findings[0]
    assert page.locator("#quality li").count() >= 1
    # drawn: ink of traces in lead I's cell, red shading in V2 at 5.5–6.5 s, none in V5's cell
    x_of = lambda t: 10 + t * 25  # noqa: E731  (mm: calibration column, then 25 mm/s)
    i_cell = _region_stats(page, x_of(0.2), x_of(2.3), 0, 40)
    v2_shaded = _region_stats(page, x_of(5.6), x_of(6.4), 45, 75)
    v5_cell = _region_stats(page, x_of(7.7), x_of(9.8), 45, 75)
    assert min(i_cell) < 240  # dark trace pixels on the pale grid
    assert v2_shaded[0] - v2_shaded[1] > 60  # red dominates where the attribution is
    assert v5_cell[0] - v5_cell[1] < 40
    page.screenshot(path=os.environ.get("ECGFOUNDER_VIEWER_SCREENSHOT", str(tmp_path / "viewer.png")), full_page=True)
    with page.expect_download() as dl:
        page.click("#download-report")
    html = open(dl.value.path(), encoding="utf-8").read()
    if os.environ.get("ECGFOUNDER_VIEWER_SCREENSHOT"):  # keep the report beside the screenshot, to look at
        shutil.copy(dl.value.path(), os.environ["ECGFOUNDER_VIEWER_SCREENSHOT"] + ".report.html")
    assert "ECG report" in html and "data:image/png;base64," in html and "http" not in html
    assert external == []  # no CDN, no external resource
    assert list(tmp.iterdir()) == []
    # an unreadable file shows the server's one-line reason
    bad = tmp_path / "bad.xml"
    bad.write_text("<RestingECG><Waveform>")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#status.error", timeout=10000)
    assert "422" in page.inner_text("#status") and "bad.xml" in page.inner_text("#status")
    page.close()


def _csv(path, seconds: float, fs: float = 250.0):
    """A 12-lead CSV with a header row and no rate; V3 flat (a quality flag)."""
    t = np.arange(int(seconds * fs)) / fs
    x = np.stack([np.sin(2 * np.pi * 1.2 * t + k) for k in range(12)], axis=1)
    x[:, 8] = 0.0
    np.savetxt(path, x, fmt="%.3f", delimiter=",", header=",".join(STANDARD_12), comments="")
    return path


def test_viewer_on_a_phone_by_keyboard(live, browser, tmp_path):
    """A 390-px phone: nothing wider than the screen; the file input is reached by Tab and opens the
    chooser from the keyboard; the page loads without a console error (no favicon 404).  The printout
    was shrunk to the screen (32 %, unreadable): it keeps a readable width and scrolls sideways.  A
    QRS taller than its row ran off the top of the canvas (cut): room is made above the top row."""
    url, _ = live
    fs, t = 250.0, np.arange(2500) / 250.0
    tall = np.stack([(4.0 if k in (0, 3, 6, 9) else 1.0) * np.exp(-((t % 0.8) - 0.4) ** 2 / 2.9e-4) for k in range(12)], 1)
    np.savetxt(tmp_path / "tall.csv", tall, fmt="%.3f", delimiter=",", header=",".join(STANDARD_12), comments="")
    page = browser.new_page(viewport={"width": 390, "height": 844})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url + "/")
    page.wait_for_function("() => !document.getElementById('model').textContent.includes('loading')")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    focused = []
    for _ in range(6):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id"))
    assert "file" in focused, focused
    chooser = []
    page.on("filechooser", lambda fc: chooser.append(fc))  # registered early: intercepting the native dialog takes a moment
    page.focus("#file")
    page.keyboard.press("Enter")
    for _ in range(50):
        if chooser:
            break
        page.wait_for_timeout(100)
    assert chooser, "Enter on the focused file input opened no file chooser"
    for control in ("attr-method", "token", "file", "fs", "leads"):
        assert page.evaluate(f"document.getElementById('{control}').labels.length") == 1, control
    page.select_option("#attr-method", "none")
    page.fill("#fs", str(fs))
    _analysed(page, str(tmp_path / "tall.csv"))
    shown = page.evaluate("""() => { const c = document.getElementById('ecg'), box = c.parentElement;
        return [c.getBoundingClientRect().width, box.scrollWidth > box.clientWidth, document.documentElement.scrollWidth,
                getComputedStyle(document.querySelector('.printout-hint')).display]; }""")
    assert shown[0] >= 700 and shown[1] and shown[2] <= 390 and shown[3] != "none", shown
    # ink of the tall R waves of the top row: below the canvas's top edge, not cut by it
    ink = page.evaluate("""() => { const c = document.getElementById('ecg'), d = c.getContext('2d');
        const dark = (y0, y1) => { const px = d.getImageData(0, y0, c.width, y1 - y0).data; let n = 0;
            for (let i = 0; i < px.length; i += 4) n += px[i] < 90; return n; };
        return [dark(0, 2), dark(2, 40)]; }""")
    assert ink[0] == 0 and ink[1] > 0, ink
    assert errors == []
    page.close()


def test_viewer_keeps_each_field_name_beside_its_input_on_a_phone(live, browser):
    """At 390 px 'leads' ended one line and its input began the next, under 'rate (Hz)'s."""
    url, _ = live
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(url + "/")
    lines = page.evaluate("() => Array.from(document.querySelectorAll('#drop .small label'), "
                          "(l) => [l.textContent.trim(), l.getClientRects().length]).filter((x) => x[1])")
    assert [n for _, n in lines] == [1] * len(lines), lines
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.close()


def _fixed_by(page, path, said: str, field: str, value: str) -> None:
    """Choose ``path``: it fails in a line saying ``said``; type ``value`` into ``field`` and choose it
    again: it is analysed."""
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#status.error", timeout=10000)
    assert said in page.inner_text("#status")
    page.fill(field, value)
    _analysed(page, str(path), timeout=10000)


def test_viewer_csv_rate_long_record_and_flag_legend(live, browser, tmp_path):
    """A CSV without a rate fails in words; with the rate typed in, choosing the same file again
    analyses it; a 12-s record says the printout shows 0–10 s of it; '!' on a lead name is explained."""
    url, _ = live
    csv = _csv(tmp_path / "rateless.csv", seconds=12)
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(url + "/")
    page.select_option("#attr-method", "none")
    _fixed_by(page, csv, "sampling rate", "#fs", "250")
    assert "12.0 s" in page.inner_text("#record")
    assert "V3" in " ".join(page.locator("#quality li").all_inner_texts())
    flat = page.locator("#quality li.flag[title='flat:V3']")  # in words, its code kept beside them
    assert flat.inner_text() == "V3: lead flat or disconnected: robust peak-to-peak below the threshold flat:V3"
    assert "signal-quality flag" in page.inner_text("#flag-note")
    # the span note is ink below the grid at the left: printout 4 rows × 40 mm, note at 5 mm under it
    note = _region_stats(page, 10, 60, 161, 166)
    assert min(note) < 250, note  # white (255) without it
    page.close()


def _ptb_like(d, seconds: float = 12, fs: int = 250):
    """A WFDB record as PTB ships it: the 12 leads in rec.dat, the Frank leads in rec.xyz (both named
    by rec.hea), and its annotations in rec.atr."""
    t = np.arange(int(seconds * fs)) / fs
    x = np.stack([200 * np.sin(2 * np.pi * 1.2 * t + k) for k in range(15)], axis=1).astype("<i2")
    lines = [f"rec 15 {fs} {len(t)}"] + [f"rec.dat 16 200 16 0 {x[0, k]} 0 0 {n}" for k, n in enumerate(STANDARD_12)]
    lines += [f"rec.xyz 16 200 16 0 {x[0, 12 + k]} 0 0 {n}" for k, n in enumerate(("vx", "vy", "vz"))]
    (d / "rec.hea").write_text("\n".join(lines) + "\n")
    (d / "rec.dat").write_bytes(x[:, :12].tobytes())
    (d / "rec.xyz").write_bytes(x[:, 12:].tobytes())
    (d / "rec.atr").write_bytes(b"\x00\x00")
    return [str(d / n) for n in ("rec.hea", "rec.dat", "rec.xyz", "rec.atr")]


def test_viewer_sends_a_wfdb_records_third_signal_file_with_it(live, browser, monkeypatch, tmp_path):
    """PTB's .hea, .dat and .xyz (and its .atr) chosen together: the viewer took the .xyz for a second
    recording, sent them to the batch, then asked the attribution and later pages without the .xyz:
    'No attribution shading: error 422: ... s0010_re.xyz is missing'.  Now they are one recording."""
    _explain_faked(monkeypatch)
    url, _ = live
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    posts = _posts(page)
    page.goto(url + "/")
    _analysed(page, _ptb_like(tmp_path))
    assert page.inner_text("#status").startswith("Done in") and not page.is_visible("#batch")
    assert "Red shading" in page.inner_text("#shading-note") and int(page.locator("#ecg").get_attribute("data-shaded")) > 5
    page.click("#page-next")
    page.wait_for_function("() => document.getElementById('page-label').textContent.startsWith('10')", timeout=20000)
    assert [p.split("?")[0] for p in posts] == ["predict", "predict"] and page.get_attribute("#status", "class") != "error"
    page.close()


def _zip(path, members):
    path.write_bytes(zip_bytes(dict(members)))
    return path


def _record_line(page):
    return page.inner_text("#record")


def _batch_page(browser, url: str, archive, *, height: int, width: int = 1300, fs: str | None = None):
    """A page of the viewer (attribution off) that was given ``archive`` (a file, at the rate ``fs``
    when given) and finished: ``(page, the console's errors, collected while the page lives)``."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url + "/")
    page.select_option("#attr-method", "none")
    if fs is not None:
        page.fill("#fs", fs)
    _analysed(page, str(archive))
    return page, errors


@pytest.mark.slow  # (the batch listing is checked without a browser in test_app; keeps the default run under 2 min)
def test_viewer_lists_the_recordings_of_a_zip_and_shows_the_one_chosen(live, browser, tmp_path):
    """A zip of two readable recordings and an unreadable one goes to /v1/predict/batch: three items
    listed, the failure with its reason, the first recording drawn at once, another drawn when
    chosen (by keyboard too); 'Download all' gives the whole batch answer."""
    url, tmp = live
    hea, dat = (WFDB.with_suffix(s) for s in (".hea", ".mat"))
    archive = _zip(tmp_path / "clinic.zip", [("a.xml", MUSE.read_bytes()), ("b/E07500.hea", hea.read_bytes()),
                                             ("b/E07500.mat", dat.read_bytes()), ("c.xml", b"<RestingECG><Waveform>")])
    page, errors = _batch_page(browser, url, archive, height=1400)
    assert page.inner_text("#status").startswith("Done: 3 recordings, 2 analysed, 1 failed")
    assert page.is_visible("#batch") and page.inner_text("#batch-title") == "3 recordings"
    items = page.locator("#batch-list li")
    assert items.count() == 3
    buttons = page.locator("#batch-list button")
    assert buttons.count() == 2
    assert buttons.nth(0).inner_text() == "clinic.zip#0" and buttons.nth(0).get_attribute("aria-current") == "true"
    assert items.nth(1).inner_text().startswith("clinic.zip#1 E07500 · ")  # the member's own name beside the item's
    failed = page.locator("#batch-list li.failed")
    assert failed.count() == 1 and failed.inner_text().startswith("clinic.zip") and "ecgfounder-serve-" not in failed.inner_text()
    first = _record_line(page)  # (members in path order; each with its own format, not the archive's)
    assert first.startswith("a · muse · 500 Hz · 12 leads · 10.0 s"), first
    buttons.nth(1).focus()
    page.keyboard.press("Enter")
    page.wait_for_function("(t) => document.getElementById('record').textContent !== t", arg=first, timeout=5000)
    assert _record_line(page).startswith("E07500 · wfdb · 500 Hz · 12 leads · 10.0 s")
    assert buttons.nth(1).get_attribute("aria-current") == "true"
    assert page.locator("#ecg").get_attribute("data-traces") == "13"
    assert json.loads(page.evaluate("JSON.stringify(last)"))["record"]["id"] == "E07500"
    assert buttons.nth(0).get_attribute("aria-current") is None
    assert page.locator("#findings li").count() >= 1
    with page.expect_download() as dl:
        page.click("#download-all")
    whole = json.loads(open(dl.value.path(), encoding="utf-8").read())
    assert [(it["name"], it["ok"]) for it in whole["items"]] == [("clinic.zip#0", True), ("clinic.zip#1", True),
                                                                 ("clinic.zip#2", False)]
    page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)
    if os.environ.get("ECGFOUNDER_VIEWER_SCREENSHOT"):
        shutil.copy(tmp_path / "batch.png", os.environ["ECGFOUNDER_VIEWER_SCREENSHOT"] + ".batch.png")
    # a single recording again: the list goes away
    page.set_input_files("#file", str(MUSE))
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Done in')", timeout=20000)
    assert not page.is_visible("#batch")
    assert errors == [] and list(tmp.iterdir()) == []
    page.close()


def test_viewer_sends_several_files_and_a_disguised_archive_to_the_batch(live, browser, tmp_path):
    """Two files chosen together (a WFDB .hea + .dat counting as one recording) are two recordings;
    a zip under a name the viewer does not know is refused by /v1/predict and sent again to the batch."""
    url, _ = live
    hea, dat = (WFDB.with_suffix(s) for s in (".hea", ".mat"))
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.goto(url + "/")
    page.select_option("#attr-method", "none")
    _analysed(page, [str(MUSE), str(hea), str(dat)])
    assert page.inner_text("#status").startswith("Done: 2 recordings, 2 analysed, 0 failed")
    assert page.locator("#batch-list button").all_inner_texts() == [MUSE.name, "E07500.hea"]
    page.set_input_files("#file", [str(hea), str(dat)])  # one WFDB record: a single answer, no list
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Done in')", timeout=20000)
    assert not page.is_visible("#batch") and "E07500" in _record_line(page)
    disguised = _zip(tmp_path / "export.ecgarchive", [("a.xml", MUSE.read_bytes()), ("b.xml", MUSE.read_bytes())])
    requests = []
    page.on("request", lambda r: requests.append(urlparse(r.url).path) if r.method == "POST" else None)
    _analysed(page, str(disguised))
    assert requests == ["/v1/predict", "/v1/predict/batch"], requests
    assert page.locator("#batch-list button").all_inner_texts() == ["export.ecgarchive#0", "export.ecgarchive#1"]
    page.close()


@pytest.mark.slow  # (the skipped items are checked without a browser in test_app; keeps the default run under 2 min)
def test_viewer_lists_the_files_of_a_zip_passed_over(live, browser, tmp_path):
    """A zip of one recording and a README: the recording is drawn and the list shows it with the
    README passed over (why, not as a failure), counted apart in the title and the status."""
    url, _ = live
    archive = _zip(tmp_path / "one.zip", [("a.xml", MUSE.read_bytes()), ("README.txt", b"exported ECGs")])
    page, errors = _batch_page(browser, url, archive, height=1000)
    assert page.inner_text("#status").startswith("Done: 1 recording, 1 analysed, 0 failed, 1 file passed over")
    assert page.is_visible("#batch") and page.inner_text("#batch-title") == "1 recording · 1 file passed over"
    assert page.locator("#batch-list button").all_inner_texts() == ["one.zip"]
    assert page.locator("#batch-list li.failed").count() == 0
    assert page.locator("#batch-list li.skipped").all_inner_texts() == [
        "one.zip: README.txt in the zip archive: passed over, not read as an ECG: a '.txt' file, of no ECG format "
        "this service reads."]
    assert _record_line(page).startswith("a · muse · ")
    # a zip of no ECG: its README listed as passed over, the reader's error as the one failure
    page.set_input_files("#file", str(_zip(tmp_path / "none.zip", [("README.txt", b"exported ECGs")])))
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Nothing')", timeout=20000)
    assert page.inner_text("#status").startswith("Nothing could be analysed, 1 file passed over")
    assert page.inner_text("#batch-title") == "1 failure · 1 file passed over"
    assert page.locator("#batch-list li.skipped").count() == 1 and page.locator("#batch-list li.failed").count() == 1
    assert errors == []
    page.close()


def test_viewer_asks_a_batch_recordings_attribution_when_it_is_chosen(live, browser, monkeypatch, tmp_path):
    """The batch is listed without attribution (one request, fast); the recording shown gets its
    shading from /v1/predict?member=k, asked for once per recording, when it is chosen."""
    _explain_faked(monkeypatch)
    url, _ = live
    archive = _zip(tmp_path / "two.zip", [("a.xml", MUSE.read_bytes()), ("b.xml", MUSE.read_bytes())])
    page = browser.new_page(viewport={"width": 1300, "height": 1200})
    posts = _posts(page)
    page.goto(url + "/")
    page.set_input_files("#file", str(archive))
    page.wait_for_function("() => Number(document.getElementById('ecg').dataset.shaded) > 5", timeout=20000)
    assert "Red shading" in page.inner_text("#shading-note")
    assert posts[0].startswith("predict/batch?") and "attribution" not in posts[0]
    assert posts[1].startswith("predict?") and "attribution=true" in posts[1] and posts[1].endswith("&member=0")
    assert json.loads(page.evaluate("JSON.stringify(last)"))["record"]["filename"] == "two.zip#0"
    buttons = page.locator("#batch-list button")
    buttons.nth(1).click()
    page.wait_for_function("() => JSON.parse(JSON.stringify(last)).record.filename === 'two.zip#1' && "
                           "Number(document.getElementById('ecg').dataset.shaded) > 5", timeout=20000)
    assert posts[2].endswith("&member=1") and len(posts) == 3
    buttons.nth(0).click()  # shown again: its shading is kept, not asked for again
    page.wait_for_function("() => JSON.parse(JSON.stringify(last)).record.filename === 'two.zip#0'", timeout=5000)
    assert int(page.locator("#ecg").get_attribute("data-shaded")) > 5 and len(posts) == 3
    page.close()


@pytest.fixture(scope="module")
def live_one_lead(tmp_path_factory):
    """The service around a tiny single-lead (lead I) model."""
    import torch

    from ecgfounder.labels import load_labels
    from ecgfounder.models.loading import save_model
    from ecgfounder.models.net1d import Net1D, Net1DConfig
    from ecgfounder.serve.adapter import Analyzer
    from ecgfounder.signal.preprocess import PreprocessContract

    torch.manual_seed(0)
    model = Net1D(Net1DConfig(in_channels=1, base_filters=8, filter_list=(16, 32), m_blocks_list=(1, 1),
                              kernel_size=8, groups_width=8, n_classes=150))
    model.labels = load_labels()
    model.contract = PreprocessContract(leads=("I",))
    ckpt = save_model(model, tmp_path_factory.mktemp("one_lead") / "tiny1.safetensors")
    with running_server(create_app(Analyzer.load(ckpt))) as url:
        yield url


def _fake_explain_at_22_s(recording, model, *, labels, method="ig", **_):
    """Attribution on lead I between 22 and 23 s (the third 10-s strip)."""
    values = np.zeros((1, len(recording.leads), recording.n_samples))
    values[0, 0, int(22 * recording.fs):int(23 * recording.fs)] = 1.0
    return types.SimpleNamespace(attributions=values, fs=recording.fs, leads=tuple(recording.leads), method=method,
                                 n_steps=8, baseline="zero", lead_resolved=True)


def test_viewer_draws_a_minute_of_a_one_lead_recording_as_rhythm_strips(live_one_lead, browser, monkeypatch, tmp_path):
    """A 35-s single-lead recording showed its first 10 s: it is drawn as four consecutive strips
    (0-10, 10-20, 20-30, 30-35 s), the attribution in the strip of its seconds."""
    _explain_faked(monkeypatch, _fake_explain_at_22_s)
    t = np.arange(35 * 250) / 250
    csv = tmp_path / "phone.csv"
    np.savetxt(csv, np.sin(2 * np.pi * 1.2 * t)[:, None], fmt="%.4f", delimiter=",", header="I", comments="")
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    page.goto(live_one_lead + "/")
    page.fill("#fs", "250")
    _analysed(page, str(csv))
    canvas = page.locator("#ecg")
    assert canvas.get_attribute("data-traces") == "4" and "1-lead rhythm" in canvas.get_attribute("aria-label")
    assert int(canvas.get_attribute("data-shaded")) > 0
    # 30-mm strips under one another: red in the third (20-30 s) at 22.5 s, none in the first at 2.5 s
    x = 10 + 2.5 * 25  # mm: calibration column, then 25 mm/s
    third, first = _region_stats(page, x - 5, x + 5, 62, 88), _region_stats(page, x - 5, x + 5, 2, 28)
    assert third[0] - third[1] > 40 and first[0] - first[1] < 40, (third, first)
    if os.environ.get("ECGFOUNDER_VIEWER_SCREENSHOT"):  # to look at
        page.screenshot(path=os.environ["ECGFOUNDER_VIEWER_SCREENSHOT"] + ".rhythm.png", full_page=True)
    page.close()


def _fake_explain_at_25_s(recording, model, *, labels, method="ig", **_):
    """Attribution on V2 between 25.5 and 26.5 s (the third 10-s page, where V2 is shown at 5-7.5 s)."""
    values = np.zeros((1, len(recording.leads), recording.n_samples))
    values[0, list(recording.leads).index("V2"), int(25.5 * recording.fs):int(26.5 * recording.fs)] = 1.0
    return types.SimpleNamespace(attributions=values, fs=recording.fs, leads=tuple(recording.leads), method=method,
                                 n_steps=8, baseline="zero", lead_resolved=True)


def test_viewer_pages_through_a_long_recording_to_where_the_model_looked(live, browser, monkeypatch, tmp_path):
    """A 35-s 12-lead recording showed its first 10 s only, and the attribution there: the model's
    look at 25 s was never seen.  The viewer shows the pages (0, 10, 20, 30 s), shaded by their share
    of the attribution, says where most of it lies, and draws the page chosen (asked once, kept)."""
    _explain_faked(monkeypatch, _fake_explain_at_25_s)
    url, _ = live
    csv = _csv(tmp_path / "long.csv", seconds=35)
    page = browser.new_page(viewport={"width": 1300, "height": 1200})
    posts = _posts(page)
    page.goto(url + "/")
    page.fill("#fs", "250")
    _analysed(page, str(csv))
    assert page.is_visible("#pages") and page.inner_text("#page-label") == "0\u201310 s of 35.0 s"
    pages = page.locator("#page-map button")
    assert pages.all_inner_texts() == ["0", "10", "20", "30"] and pages.nth(2).get_attribute("class") == "most"
    assert "Most of it lies in 20\u201330 s (100 %)" in page.inner_text("#shading-note")
    assert page.locator("#ecg").get_attribute("data-shaded") == "0" and page.is_disabled("#page-prev")
    pages.nth(2).click()
    page.wait_for_function("() => document.getElementById('page-label').textContent.startsWith('20')", timeout=20000)
    assert page.inner_text("#page-label") == "20\u201330 s of 35.0 s" and posts[-1].endswith("&start=20")
    assert int(page.locator("#ecg").get_attribute("data-shaded")) > 5
    v2 = _region_stats(page, 10 + 5.6 * 25, 10 + 6.4 * 25, 45, 75)  # V2's row, 25.6-26.4 s
    assert v2[0] - v2[1] > 40, v2
    page.click("#page-next")
    page.wait_for_function("() => document.getElementById('page-label').textContent.startsWith('30')", timeout=20000)
    assert posts[-1].endswith("&start=30") and page.is_disabled("#page-next") and len(posts) == 3
    page.click("#page-prev")  # 20 s again: kept, not asked for again
    page.wait_for_function("() => document.getElementById('page-label').textContent.startsWith('20')", timeout=5000)
    assert len(posts) == 3 and int(page.locator("#ecg").get_attribute("data-shaded")) > 5
    if os.environ.get("ECGFOUNDER_VIEWER_SCREENSHOT"):  # to look at
        page.screenshot(path=os.environ["ECGFOUNDER_VIEWER_SCREENSHOT"] + ".pages.png", full_page=True)
    page.close()


@pytest.mark.slow  # (a race of two page requests in the browser; keeps the default run under 2 min)
def test_viewer_shows_the_page_chosen_last_whatever_answers_last(live, browser, tmp_path):
    """Two pages chosen in quick succession: the answer for the first came after the second's and
    replaced it, so the viewer showed a page other than the one chosen last."""
    url, _ = live
    page, _ = _batch_page(browser, url, _csv(tmp_path / "long.csv", seconds=25), height=900, fs="250")
    page.evaluate("""() => { const f = window.fetch;  // the answer for 10 s is slow
        window.fetch = async (u, o) => { const r = await f(u, o);
            if (String(u).includes('start=10')) {
                await new Promise((ok) => setTimeout(ok, 150));
                setTimeout(() => { window.slowCame = true; }, 50);  // after the viewer has read it
            }
            return r; }; }""")
    pages = page.locator("#page-map button")
    pages.nth(1).click()
    pages.nth(2).click()
    page.wait_for_function("() => window.slowCame && last.signal.start_s !== 0", timeout=10000)
    assert page.inner_text("#page-label").startswith("20\u201325 s")
    assert page.evaluate("last.signal.start_s") == 20 and page.inner_text("#status").startswith("Page 20")
    pages.nth(1).click()  # kept: shown at once
    page.wait_for_function("() => last.signal.start_s === 10", timeout=2000)
    page.close()


def test_viewer_says_whether_the_percentages_are_calibrated(live, browser, tmp_path):
    """'61.3 % (threshold 50 %)' read as a probability; nothing said that these weights carry no
    calibration.  The findings (and the report) now say what the percentages are, either way."""
    url, _ = live
    page, _ = _batch_page(browser, url, MUSE, height=900)
    assert page.inner_text("#findings-note").startswith("Percentages are the model's scores, not calibrated")
    with page.expect_download() as dl:
        page.click("#download-report")
    assert "not calibrated probabilities" in open(dl.value.path(), encoding="utf-8").read()
    page.evaluate("() => { const a = JSON.parse(JSON.stringify(last)); a.labels[0].calibrated_probability = 0.4;"
                  " a.findings[0].calibrated_probability = 0.4; show(a); }")
    assert page.inner_text("#findings-note").startswith("Marked \u201ccalibrated\u201d: calibrated probabilities")
    assert page.locator("#findings li").first.inner_text().endswith("40.0 % (threshold 50 %, calibrated)")
    page.close()


def test_viewer_says_which_leads_were_derived(live_one_lead, browser, tmp_path):
    """A 2-lead recording (I, II) was headed '6 leads' over a printout of two: the leads computed on
    reading (III, aVR, aVL, aVF) are now named as derived."""
    t = np.arange(2500) / 250
    csv = tmp_path / "holter.csv"
    np.savetxt(csv, np.stack([np.sin(7.5 * t), np.cos(7.5 * t)], axis=1), fmt="%.4f", delimiter=",", header="I,II",
               comments="")
    page, _ = _batch_page(browser, live_one_lead, csv, height=700, fs="250")
    assert _record_line(page) == "holter · csv · 250 Hz · 6 leads · 10.0 s · derived: III, aVR, aVL, aVF"
    page.close()


def _fake_explain_every_lead(recording, model, *, labels, method="ig", **_):
    """As Grad-CAM: one time course, the same on every lead (the method does not resolve leads)."""
    values = np.zeros((1, len(recording.leads), recording.n_samples))
    values[0, :, int(5.5 * recording.fs):int(6.5 * recording.fs)] = 1.0
    return types.SimpleNamespace(attributions=values, fs=recording.fs, leads=tuple(recording.leads), method=method,
                                 n_steps=None, baseline=None, lead_resolved=False)


def test_viewer_says_when_the_shading_does_not_resolve_leads(live, browser, monkeypatch):
    """Grad-CAM shades every lead alike; the answer's note says so, but the viewer showed the red on
    all twelve leads without it, as if the model had looked at each."""
    _explain_faked(monkeypatch, _fake_explain_every_lead)
    url, _ = live
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(url + "/")
    page.select_option("#attr-method", "gradcam")
    _analysed(page, str(MUSE))
    note = page.inner_text("#shading-note")
    assert "(gradcam). This method does not resolve leads: the shading is the same on every lead." in note, note
    with page.expect_download() as dl:
        page.click("#download-report")
    assert "the shading is the same on every lead" in open(dl.value.path(), encoding="utf-8").read()
    page.close()


def test_viewer_feeds_another_lead_to_a_one_lead_model(live_one_lead, browser, tmp_path):
    """A recording of II and V5 (as MIT-BIH's) could not be analysed by a lead-I model at all: the
    service had no way to say which lead to feed it, though the library has (lead=).  The viewer of a
    one-lead model offers the field; the answer says which lead was fed."""
    t = np.arange(3000) / 250
    csv = tmp_path / "holter.csv"
    np.savetxt(csv, np.stack([np.sin(7.5 * t), np.cos(7.5 * t)], axis=1), fmt="%.4f", delimiter=",", header="II,V5",
               comments="")
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(live_one_lead + "/")
    page.wait_for_function("() => !document.getElementById('lead-row').hidden")
    page.select_option("#attr-method", "none")
    page.fill("#fs", "250")
    _fixed_by(page, csv, "lead=II", "#lead", "II")
    assert "feeding lead II to a model trained on lead I" in page.inner_text("#quality")
    assert page.locator("#ecg").get_attribute("data-traces") == "4"  # II and V5, 0-10 and 10-12 s
    page.close()


def test_viewer_does_not_call_an_unassessed_recording_good(live, browser, monkeypatch, tmp_path):
    """Signal quality not assessed (the check failed, or is not installed): the panel said "no flags" in
    the green of a good recording; now it says it was not assessed, and why."""
    import ecgfounder.signal.quality as quality

    def broken(recording):
        raise RuntimeError("no quality today")

    monkeypatch.setattr(quality, "assess", broken)
    url, _ = live
    t = np.arange(2500) / 250
    csv = tmp_path / "clean.csv"
    np.savetxt(csv, np.stack([np.sin(2 * np.pi * 1.2 * t + k) for k in range(12)], axis=1), fmt="%.3f",
               delimiter=",", header=",".join(STANDARD_12), comments="")
    page, _ = _batch_page(browser, url, csv, height=700, width=1000, fs="250")
    items = page.locator("#quality li")
    assert items.first.inner_text() == "not assessed (no flags from preprocessing)"
    assert items.first.get_attribute("class") != "ok"
    assert "no quality today" in " ".join(items.all_inner_texts())  # the note says why
    page.close()
