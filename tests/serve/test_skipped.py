"""Members of an uploaded zip archive that are not read as ECGs (a README, an image, an XML of no ECG
dialect, macOS metadata, ...): each is an item of the batch answer of its own, status 'skipped', named
in the archive's terms with its reason; the recordings read are answered as before."""

from __future__ import annotations

import asyncio
import base64

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from ecgfounder.serve import ServeConfig, create_app  # noqa: E402

from servehelpers import MUSE, WFDB, zip_bytes  # noqa: E402

NOT_ECG = {
    "README.txt": b"ECGs exported from the clinic\n",
    "docs/scan.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 32,
    "notes.xml": b"<?xml version='1.0'?><notes><n>not an ECG</n></notes>",
    "labels.csv": b"id,label\n1,AF\n",
    "__MACOSX/._a.xml": b"\0\5\26\7",
    "orphan.dat": b"\0\1" * 8,
    "A.XML": MUSE.read_bytes(),  # a.xml's path but for case (one file on a case-insensitive disk): not read
}
# each passed-over member: words its reason must hold
REASONS = {
    "README.txt": "'.txt' file", "docs/scan.png": "'.png' file", "notes.xml": "XML of no known ECG dialect",
    "labels.csv": "without lead-like column names", "__MACOSX/._a.xml": "macOS", "orphan.dat": "orphan.hea",
    "A.XML": "same path as a.xml",
}


def _ecg_members() -> dict[str, bytes]:
    return {"a.xml": MUSE.read_bytes(), "E07500.hea": WFDB.with_suffix(".hea").read_bytes(),
            "E07500.mat": WFDB.with_suffix(".mat").read_bytes()}


def _mixed() -> bytes:
    ecg = _ecg_members()
    return zip_bytes({"a.xml": ecg["a.xml"], **NOT_ECG, "E07500.hea": ecg["E07500.hea"], "E07500.mat": ecg["E07500.mat"]})


@pytest.fixture(scope="module")
def client(analyzer, tmp_path_factory):
    with TestClient(create_app(analyzer, ServeConfig(tmp_dir=tmp_path_factory.mktemp("up")))) as c:
        yield c


def _without_timing(item: dict) -> dict:
    return {**item, "result": {k: v for k, v in item["result"].items() if k != "timing_ms"}}


def _check_skipped(items: list[dict], archive: str, members: list[str] = list(NOT_ECG)) -> None:
    skipped = [it for it in items if it["status"] == "skipped"]
    assert [it["member"] for it in skipped] == members, skipped  # in the archive's order, each once
    for it in skipped:
        m = it["member"]
        assert it["name"] == f"{archive}/{m}" and not it["ok"] and it["result"] is None
        assert it["error"].startswith(f"{archive}: {m} in the zip archive: passed over, not read as an ECG"), it
        assert REASONS[m] in it["error"], it
        assert "ecgfounder-" not in it["error"] and "\n" not in it["error"]


def test_batch_lists_each_member_of_a_zip_passed_over(client):
    """A zip of two ECGs (MUSE XML; a WFDB record as .hea + .mat) and seven other files: the two
    recordings' items are those of a zip of the ECGs alone; each other file is an item of its own,
    'skipped', not counted as failed; the WFDB record's .mat is part of its record, not listed."""
    clean = client.post("/v1/predict/batch", files=[("file", ("x.zip", zip_bytes(_ecg_members())))]).json()
    r = client.post("/v1/predict/batch", files=[("file", ("x.zip", _mixed()))])
    assert r.status_code == 200, r.text
    b = r.json()
    read = [it for it in b["items"] if it["status"] != "skipped"]
    assert [(it["name"], it["status"], it["ok"]) for it in read] == [("x.zip#0", "ok", True), ("x.zip#1", "ok", True)]
    assert [_without_timing(it) for it in read] == [_without_timing(it) for it in clean["items"]]
    assert b["items"][:2] == read  # the recordings first, as numbered; then the files passed over
    _check_skipped(b["items"], "x.zip")
    assert (b["n_ok"], b["n_failed"], b["n_skipped"]) == (2, 0, len(NOT_ECG))
    assert (clean["n_ok"], clean["n_failed"], clean["n_skipped"]) == (2, 0, 0)


def test_batch_of_a_zip_without_ecg_says_why_of_each_file(client):
    """A zip holding no ECG at all: its failure (one item, as before) and each file it holds, with why."""
    docs = {k: v for k, v in NOT_ECG.items() if k != "A.XML"}
    b = client.post("/v1/predict/batch", files=[("file", ("docs.zip", zip_bytes(docs)))]).json()
    assert [(it["name"], it["status"]) for it in b["items"][:1]] == [("docs.zip", "failed")]
    assert b["items"][0]["error"] == "docs.zip: zip archive holds no ECG record files"
    _check_skipped(b["items"][1:], "docs.zip", list(docs))
    assert (b["n_ok"], b["n_failed"], b["n_skipped"]) == (0, 1, len(docs))


def test_predict_one_recording_of_a_zip_notes_the_files_passed_over(client):
    """/v1/predict with a zip of one ECG and a README: the answer, its notes naming the README."""
    r = client.post("/v1/predict", files={"file": ("one.zip", zip_bytes({"a.xml": MUSE.read_bytes(),
                                                                         "README.txt": b"hi"}))})
    assert r.status_code == 200, r.text
    notes = [n for n in r.json()["notes"] if "README.txt" in n]
    assert notes == ["one.zip: README.txt in the zip archive: passed over, not read as an ECG: a '.txt' file, of no "
                     "ECG format this service reads."], r.json()["notes"]


def test_passed_over_follows_the_wfdb_records_read(tmp_path):
    """The files of a WFDB record read (its signal files, a multi-segment record's segments and their
    files) are part of it; an annotation beside it and a file after the listing's limit are not."""
    from ecgfounder.serve.members import passed_over

    master = b"rec 2 500 2000\nrec_0001 1000\nrec_0002 1000\n"
    seg = "{0} 2 500 1000\n{0}.dat 16 200 16 0 0 0 0 I\n{0}.dat 16 200 16 0 0 0 0 II\n"
    z = tmp_path / "r.zip"
    z.write_bytes(zip_bytes({"rec.hea": master, "rec_0001.hea": seg.format("rec_0001").encode(), "rec_0001.dat": b"1",
                             "rec_0002.hea": seg.format("rec_0002").encode(), "rec_0002.dat": b"2",
                             "rec.atr": b"3", "x.txt": b"4", "y.txt": b"5", "z.txt": b"6"}))
    got = passed_over(z, "r.zip", {"rec.hea"}, limit=2)
    assert [(s.name, s.member) for s in got] == [("r.zip/rec.atr", "rec.atr"), ("r.zip/x.txt", "x.txt"),
                                                 ("r.zip/...", None)]
    assert "beside the WFDB record rec.hea" in got[0].reason
    assert got[2].reason.startswith("r.zip: 2 more files of the zip archive passed over") and "y.txt" in got[2].reason
    assert passed_over(tmp_path / "r.zip", "r.zip", {"rec.hea"}, limit=10)[-1].member == "z.txt"
    (tmp_path / "bad.zip").write_bytes(b"PK\3\4 not a zip")
    assert passed_over(tmp_path / "bad.zip", "bad.zip", set(), limit=10) == []


def test_mcp_batch_tool_lists_the_files_passed_over(analyzer, tmp_path):
    """analyze_ecg_batch answers as /v1/predict/batch: the files passed over are 'skipped' items."""
    pytest.importorskip("mcp")
    from mcp import Client

    from ecgfounder.serve import build_mcp_server

    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path), allowed_dirs=(tmp_path,))

    async def call():
        async with Client(server, mode="legacy") as client:
            zipped = zip_bytes({"a.xml": MUSE.read_bytes(), **NOT_ECG})  # one recording: the item named x.zip
            res = await client.call_tool("analyze_ecg_batch", {"content_base64": base64.b64encode(zipped).decode(),
                                                               "filename": "x.zip"})
        await server.ecgfounder_service.stop()
        return res

    res = asyncio.run(call())
    b = getattr(res, "structured_content", None) or res.structuredContent
    assert [(it["name"], it["status"]) for it in b["items"][:1]] == [("x.zip", "ok")]
    assert b["items"][0]["result"]["record"]["format"] == "muse"
    _check_skipped(b["items"], "x.zip")
    assert (b["n_ok"], b["n_failed"], b["n_skipped"]) == (1, 0, len(NOT_ECG))


def _zip_of(path, members: list[tuple[str, bytes]]):
    """A zip of ``(name, bytes)`` in that order, names kept as given (twice, '..', '/...')."""
    import warnings
    import zipfile

    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as z:
        warnings.simplefilter("ignore")  # (zipfile warns of a name written twice)
        for name, data in members:
            z.writestr(zipfile.ZipInfo(name), data)
    return path


def _tally(path):
    """What the reader took from the archive at ``path`` (as the service tallies it)."""
    import warnings

    from ecgfounder.io import iter_read
    from ecgfounder.serve.members import ArchiveTally

    tally = ArchiveTally()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the reader's note of the XML files it passed over)
        for got in iter_read(path, errors="yield"):
            tally.add(got)
    return tally


def test_passed_over_names_what_the_reader_extracted_by_its_path(tmp_path):
    """Folders are kept: more/a.xml is read beside a.xml (it was listed as 'the same file name as
    a.xml'); a second entry of one path (twice a.xml, A.XML), a name of no file ('..') and a file of
    its own under a root or '..' are listed, each once; a WFDB record in a folder takes its signal
    file there, not a file of that name elsewhere."""
    from ecgfounder.serve.members import passed_over

    hea = WFDB.with_suffix(".hea").read_bytes()
    z = _zip_of(tmp_path / "f.zip", [
        ("a.xml", MUSE.read_bytes()), ("more/a.xml", MUSE.read_bytes()), ("A.XML", b"<x/>"), ("a.xml", b"<y/>"),
        ("..", b"1"), ("../../up.txt", b"2"), ("sub/E07500.hea", hea), ("sub/E07500.mat", b"3"), ("E07500.mat", b"4")])
    tally = _tally(z)
    # (a .mat without a header beside it is taken for a MATLAB file: its failure says where the header goes)
    assert tally.archive and not tally.refused and tally.taken == {"a.xml", "more/a.xml", "sub/E07500.hea", "E07500.mat"}
    got = {s.member: s.reason for s in passed_over(z, "f.zip", tally.taken, limit=20)}
    assert list(got) == ["A.XML", "a.xml", "..", "../../up.txt"], got
    assert "the same path as a.xml, read in its place" in got["A.XML"] and "same path as a.xml" in got["a.xml"]
    assert "a name of no file" in got[".."] and "a '.txt' file" in got["../../up.txt"]


def test_a_file_of_an_inner_archive_does_not_hide_one_of_the_same_name(tmp_path):
    """An error of inner.zip's bad.xml named its member bad.xml, and the outer archive's own bad.xml
    (no ECG) was taken for read: the outer file an error is about is the one its reason starts with."""
    from ecgfounder.serve.members import passed_over

    inner = _zip_of(tmp_path / "inner.zip", [("bad.xml", b"<?xml version='1.0'?><RestingECG></RestingECG>")])
    z = _zip_of(tmp_path / "o.zip", [("a.xml", MUSE.read_bytes()), ("bad.xml", b"<notes/>"),
                                     ("inner.zip", inner.read_bytes())])
    tally = _tally(z)
    assert tally.taken == {"a.xml", "inner.zip"}
    assert [s.member for s in passed_over(z, "o.zip", tally.taken, limit=20)] == ["bad.xml"]


def test_the_files_of_a_zip_inside_the_zip_are_listed_too(client):
    """A zip inside the uploaded zip was read (its recordings answered), but its own README, image and
    orphan signal file were in no item: the answer did not account for them.  Each is listed, named
    through the archives it lies in, and so are those of a zip inside that one; a WFDB record's
    signal file beside its header in the inner zip is read, not listed."""
    ecg = _ecg_members()
    deepest = zip_bytes({"c.xml": ecg["a.xml"], "notes.md": b"x"})
    inner = zip_bytes({"a.xml": ecg["a.xml"], "README.txt": b"r", "E07500.hea": ecg["E07500.hea"],
                       "E07500.mat": ecg["E07500.mat"], "orphan.dat": b"\0\1", "deep/d.zip": deepest})
    outer = zip_bytes({"top.xml": ecg["a.xml"], "inner.zip": inner, "x.txt": b"y"})
    r = client.post("/v1/predict/batch", files={"file": ("outer.zip", outer)})
    a = r.json()
    assert r.status_code == 200 and a["n_ok"] == 4 and a["n_failed"] == 0, r.text[:500]
    skipped = {it["member"]: it for it in a["items"] if it["status"] == "skipped"}
    assert list(skipped) == ["x.txt", "inner.zip/README.txt", "inner.zip/orphan.dat", "inner.zip/deep/d.zip/notes.md"]
    assert a["n_skipped"] == 4
    assert skipped["inner.zip/README.txt"]["name"] == "outer.zip/inner.zip/README.txt"
    assert skipped["inner.zip/orphan.dat"]["error"] == (
        "outer.zip: orphan.dat in the zip archive inner.zip: passed over, not read as an ECG: a WFDB signal file "
        "without its header; put orphan.hea in the archive with it.")
    assert "notes.md in the zip archive inner.zip/deep/d.zip:" in skipped["inner.zip/deep/d.zip/notes.md"]["error"]
