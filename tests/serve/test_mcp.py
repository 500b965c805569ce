"""The MCP tool, called through the MCP SDK's own client in-process (JSON-RPC over memory streams)."""

from __future__ import annotations

import asyncio
import base64

import pytest

pytest.importorskip("fastapi")
mcp = pytest.importorskip("mcp")

from servehelpers import DATA, MUSE, STANDARD_12, WFDB, hdf5_batch, sine_signal, zip_bytes  # noqa: E402

from ecgfounder.serve import ServeConfig, build_mcp_server  # noqa: E402


async def _session(server, calls):
    from mcp import Client

    out = []
    # mode="legacy": the initialize handshake and JSON-RPC framing over in-memory streams
    async with Client(server, mode="legacy") as client:
        tools = await client.list_tools()
        out.append(tools)
        for name, args in calls:
            out.append(await client.call_tool(name, args))
    await server.ecgfounder_service.stop()
    return out


def test_mcp_tool_schema_and_calls(analyzer, tmp_path):
    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path), allowed_dirs=(DATA,))
    sig = sine_signal()
    tools, by_path, by_b64, by_signal, outside, labels = asyncio.run(_session(server, [
        ("analyze_ecg", {"path": str(MUSE)}),
        ("analyze_ecg", {"content_base64": base64.b64encode(MUSE.read_bytes()).decode(), "filename": "x.xml"}),
        ("analyze_ecg", {"signal": sig["signal"], "fs": sig["fs"], "leads": sig["leads"], "all_labels": True}),
        ("analyze_ecg", {"path": "/etc/passwd"}),
        ("list_labels", {}),
    ]))
    tool = {t.name: t for t in tools.tools}["analyze_ecg"]
    props = tool.input_schema["properties"] if hasattr(tool, "input_schema") else tool.inputSchema["properties"]
    assert {"path", "content_base64", "filename", "signal", "fs", "leads"} <= set(props)
    out_schema = getattr(tool, "output_schema", None) or getattr(tool, "outputSchema", None)
    assert out_schema and {"findings", "quality", "model", "labels"} <= set(out_schema["properties"])

    def structured(res):
        assert not (getattr(res, "is_error", None) or getattr(res, "isError", False)), res
        return getattr(res, "structured_content", None) or res.structuredContent

    a = structured(by_path)
    assert a["record"]["format"] == "muse" and len(a["labels"]) == 10
    assert a["model"]["n_labels"] == 150 and a["findings"]
    b = structured(by_b64)
    assert [f["label"] for f in b["findings"]] == [f["label"] for f in a["findings"]]
    assert len(structured(by_signal)["labels"]) == 150
    assert getattr(outside, "is_error", None) or getattr(outside, "isError", False)
    assert "outside the directories" in outside.content[0].text
    assert len(structured(labels)["labels"]) == 150
    assert list(tmp_path.iterdir()) == []


def test_mcp_wfdb_header_may_not_name_files_outside(analyzer, tmp_path):
    import numpy as np


    allowed, secret = tmp_path / "allowed", tmp_path / "secret.bin"
    allowed.mkdir()
    (np.arange(12 * 5000, dtype="<i2") % 1000).tofile(secret)
    hea = ("y 12 250 5000\n" + "".join(f"{secret} 16 1/mV 16 0 0 0 0 {ld}\n" for ld in STANDARD_12)).encode()
    (allowed / "y.hea").write_bytes(hea)
    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path), allowed_dirs=(allowed,))
    _, by_path, by_b64 = asyncio.run(_session(server, [
        ("analyze_ecg", {"path": str(allowed / "y.hea")}),
        ("analyze_ecg", {"content_base64": base64.b64encode(hea).decode(), "filename": "y.hea"}),
    ]))
    for res in (by_path, by_b64):  # both were analysed, reading the secret file as the signal
        assert getattr(res, "is_error", None) or getattr(res, "isError", False)
        text = res.content[0].text
        assert "y.hea" in text and str(secret) in text and "not a plain file name" in text


def _error_text(res) -> str:
    assert getattr(res, "is_error", None) or getattr(res, "isError", False), res
    return res.content[0].text


def test_mcp_base64_with_line_breaks_and_bad_inline_signal(analyzer, tmp_path):
    """`base64` wraps its output at 76 columns: the tool accepts it.  A signal that fails the
    request's own checks (fs <= 0, no rows) is one line naming the field and the fix, not
    pydantic's multi-line report with its documentation links."""
    import textwrap

    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path), allowed_dirs=(DATA,))
    wrapped = "\n".join(textwrap.wrap(base64.b64encode(MUSE.read_bytes()).decode(), 76)) + "\n"
    sig = sine_signal()
    _, by_b64, bad_b64, bad_fs, empty = asyncio.run(_session(server, [
        ("analyze_ecg", {"content_base64": wrapped, "filename": "x.xml"}),
        ("analyze_ecg", {"content_base64": "not*base64", "filename": "x.xml"}),
        ("analyze_ecg", {"signal": sig["signal"], "fs": -1, "leads": sig["leads"]}),
        ("analyze_ecg", {"signal": [], "fs": 500, "leads": []}),
    ]))
    assert not (getattr(by_b64, "is_error", None) or getattr(by_b64, "isError", False)), by_b64.content[0].text
    assert "x.xml" in _error_text(bad_b64) and "standard base64" in _error_text(bad_b64)
    for res, field in ((bad_fs, "fs"), (empty, "signal")):
        text = _error_text(res)
        assert "\n" not in text and "pydantic.dev" not in text and "validation error" not in text, text
        assert f"{field}:" in text and "fs > 0 in Hz" in text, text
    assert list(tmp_path.iterdir()) == []


def test_mcp_a_wfdb_header_alone_says_how_to_send_its_signal_file(analyzer, tmp_path):
    """A WFDB header sent alone as content_base64 was told to 'put the two files side by side', which
    an agent cannot do; it is told to send them zipped (which the tool reads) or to give the path."""
    import io
    import zipfile

    hea, mat = (WFDB.with_suffix(s) for s in (".hea", ".mat"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(hea.name, hea.read_bytes())
        z.writestr(mat.name, mat.read_bytes())
    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path), allowed_dirs=(DATA,))
    _, alone, zipped = asyncio.run(_session(server, [
        ("analyze_ecg", {"content_base64": base64.b64encode(hea.read_bytes()).decode(), "filename": hea.name}),
        ("analyze_ecg", {"content_base64": base64.b64encode(buf.getvalue()).decode(), "filename": "E07500.zip"}),
    ]))
    text = _error_text(alone)
    assert "E07500.mat is missing" in text and "side by side" not in text, text
    assert "in a zip as content_base64" in text and "header's path" in text, text
    assert not (getattr(zipped, "is_error", None) or getattr(zipped, "isError", False)), zipped.content[0].text


def test_mcp_takes_the_lead_fed_to_a_one_lead_model(analyzer, tmp_path):
    """'lead' (the library's lead=, for a one-lead model) is an argument of both tools; a 12-lead
    model refuses it by name.  It was an unknown argument, and a one-lead model's error for a
    recording without lead I named no fix an agent could follow."""
    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path), allowed_dirs=(DATA,))
    tools, one = asyncio.run(_session(server, [("analyze_ecg", {"path": str(MUSE), "lead": "II"})]))
    for t in tools.tools:
        if t.name.startswith("analyze_ecg"):
            assert "lead" in (getattr(t, "input_schema", None) or t.inputSchema)["properties"], t.name
    assert "leave lead out" in _error_text(one)


def test_mcp_bad_arguments_get_one_line_with_a_valid_call(analyzer, tmp_path):
    """Arguments failing the tool's schema came back as the SDK's pydantic report (several lines,
    documentation links, 5000 entries for a signal of nulls) and unknown ones were ignored; now each
    is one line naming the argument, the value given and a valid call."""
    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path), allowed_dirs=(DATA,))
    sig = sine_signal()
    cases = [
        ({"path": 123}, "path: Input should be a valid string (got integer 123)"),
        ({"signal": [["a"]], "fs": 500, "leads": ["I"]}, 'signal[0][0]: Input should be a valid number'),
        ({"signal": sig["signal"], "fs": 500, "leads": "I,II"}, 'leads: Input should be a valid list (got string "I,II")'),
        ({"signal": [[None] * 5000], "fs": 500, "leads": ["I"]}, "signal[0][0]: Input should be a valid number (got null) "
                                                                  "(and 4999 more like it)"),
        ({"path": str(MUSE), "all_label": True}, "all_label: unknown argument (got boolean true) (the arguments are path,"),
        ({"content_base64": ["QUJD"], "filename": "x.xml"}, "content_base64: Input should be a valid string (got an array of 1 item)"),
        ({}, "give exactly one of path, content_base64"),
        ({"path": str(MUSE), "filename": "x.xml"}, "filename goes with content_base64"),
        ({"signal": sig["signal"], "fs": 500, "leads": sig["leads"], "units": "uV"}, "format, units and key apply to a file"),
    ]
    tools, *answers, labels = asyncio.run(_session(server, [("analyze_ecg", a) for a, _ in cases]
                                                   + [("list_labels", {"x": 1})]))
    assert all(t.input_schema["additionalProperties"] is False for t in tools.tools)  # said before any call
    for (args, expect), res in zip(cases, answers):
        text = _error_text(res)
        assert expect in text and "valid calls: {\"path\"" in text, (args, text)
        assert "\n" not in text and "pydantic" not in text and "validation error" not in text and len(text) < 420, text
    assert _error_text(labels).endswith("x: unknown argument (got integer 1) (the arguments are none; valid call: {})")


def test_mcp_reads_files_with_the_rate_and_leads_given(analyzer, tmp_path):
    """fs and leads were taken for inline signals only: a CSV path with fs was refused with the
    library's "pass fs=... (CLI: --fs)", a flag an agent cannot pass.  They now reach the reader, and
    the reader's hints name the tool's arguments."""
    import numpy as np


    t = np.arange(5000) / 500
    csv = tmp_path / "ecg.csv"
    x = np.stack([np.sin(2 * np.pi * 1.2 * t + k) for k in range(12)], axis=1)
    np.savetxt(csv, x, delimiter=",", fmt="%.4f")
    np.savetxt(tmp_path / "three.csv", x[:, :3], delimiter=",", fmt="%.4f")  # too few channels to assume an order
    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path, max_upload_bytes=2_000_000), allowed_dirs=(tmp_path,))
    _, no_fs, no_leads, ok, b64, bad_format, too_big = asyncio.run(_session(server, [
        ("analyze_ecg", {"path": str(csv)}),
        ("analyze_ecg", {"path": str(tmp_path / "three.csv"), "fs": 500}),
        ("analyze_ecg", {"path": str(csv), "fs": 500, "leads": STANDARD_12}),
        ("analyze_ecg", {"content_base64": base64.b64encode(csv.read_bytes()).decode(), "filename": "e.csv",
                         "fs": 500, "leads": STANDARD_12, "units": "mV"}),
        ("analyze_ecg", {"path": str(csv), "format": "bogus"}),
        ("analyze_ecg", {"content_base64": "A" * 3_000_000, "filename": "e.csv"}),
    ]))
    assert "pass the argument fs=" in _error_text(no_fs) and "CLI" not in _error_text(no_fs)
    assert 'pass the argument leads=["I", "II", ...]' in _error_text(no_leads) and "CLI" not in _error_text(no_leads)
    for res in (ok, b64):
        assert not res.is_error, res.content[0].text
        assert res.structured_content["record"]["fs"] == 500.0 and res.structured_content["record"]["format"] == "csv"
    assert "the argument format: unknown format 'bogus'; choose one of" in _error_text(bad_format)
    assert "content_base64 of 3000000 characters" in _error_text(too_big) and "give its path" in _error_text(too_big)


def test_mcp_batch_answers_for_each_recording_of_a_file(analyzer, tmp_path):
    """A zip of ECG files or an HDF5 batch was refused by analyze_ecg, with a fix (a batch request)
    an agent cannot make; analyze_ecg_batch answers one item per recording (FILE#k, in order), a bad
    member its own one-line error naming the file (not the temporary path), at most max_files."""
    pytest.importorskip("h5py")
    inbox, tmp = tmp_path / "in", tmp_path / "tmp"
    inbox.mkdir(), tmp.mkdir()
    (inbox / "pair.zip").write_bytes(zip_bytes({"a.xml": MUSE.read_bytes(), "b.xml": MUSE.read_bytes()}))
    bad = zip_bytes({"a.xml": MUSE.read_bytes(), "b.xml": MUSE.read_bytes(), "c.xml": b"<RestingECG><Waveform>"})
    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp, max_files=2), allowed_dirs=(inbox, DATA))
    b64 = base64.b64encode
    _, zipped, h5, one, refused, picked, past, on_signal = asyncio.run(_session(server, [
        ("analyze_ecg_batch", {"content_base64": b64(bad).decode(), "filename": "bad.zip"}),
        ("analyze_ecg_batch", {"content_base64": b64(hdf5_batch(3)).decode(), "filename": "three.h5", "all_labels": True}),
        ("analyze_ecg_batch", {"path": str(MUSE)}),
        ("analyze_ecg", {"path": str(inbox / "pair.zip")}),
        ("analyze_ecg", {"content_base64": b64(hdf5_batch(3)).decode(), "filename": "three.h5", "member": 2}),
        ("analyze_ecg", {"path": str(inbox / "pair.zip"), "member": 2}),
        ("analyze_ecg", {"signal": [[0.0] * 10] * 12, "fs": 500, "leads": STANDARD_12, "member": 0}),
    ]))

    def items(res):
        assert not res.is_error, res.content[0].text
        return res.structured_content["items"]

    got = items(zipped)
    assert [(it["name"], it["ok"]) for it in got] == [("bad.zip#0", True), ("bad.zip#1", True), ("bad.zip#2", False)]
    assert [len(it["result"]["labels"]) for it in got[:2]] == [10, 10]  # trimmed as analyze_ecg's
    err = got[2]["error"]
    assert err.startswith("bad.zip") and "\n" not in err and "ecgfounder-mcp-" not in err and str(tmp) not in err, err
    assert (zipped.structured_content["n_ok"], zipped.structured_content["n_failed"]) == (2, 1)
    got = items(h5)  # three recordings, two allowed: the third is the error item
    assert [(it["name"], it["ok"]) for it in got] == [("three.h5#0", True), ("three.h5#1", True), ("three.h5#2", False)]
    assert [len(it["result"]["labels"]) for it in got[:2]] == [150, 150]
    assert "holds more than 2 recordings" in got[2]["error"] and "max_files" in got[2]["error"]
    (single,) = items(one)
    assert single["name"] == MUSE.name and single["ok"] and single["result"]["record"]["format"] == "muse"
    assert _error_text(refused).endswith(": pair.zip holds several recordings and one is analysed here; call analyze_"
                                         "ecg_batch with the same path or content_base64, which answers for each, or "
                                         "give member (0 for the first) to analyse one.")
    # one recording of the file, picked by member (as the batch's item three.h5#2 is, beyond max_files here)
    assert not picked.is_error, picked.content[0].text
    assert picked.structured_content["record"]["filename"] == "three.h5#2"
    assert _error_text(past).endswith("pair.zip holds 2 recording(s); member=2 is past the last (give 0 to 1).")
    assert "leave member out" in _error_text(on_signal)
    assert list(tmp.iterdir()) == []


def test_mcp_batch_tool_refuses_bad_arguments_in_one_line(analyzer, tmp_path):
    """The batch tool is listed beside analyze_ecg, refuses unknown and ill-typed arguments with one
    line and a valid call of its own, and reads only under the allowed directories."""
    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path, max_upload_bytes=100_000), allowed_dirs=(DATA,))
    tools, unknown, typed, none, outside, too_big = asyncio.run(_session(server, [
        ("analyze_ecg_batch", {"path": str(MUSE), "signal": [[0.0]]}),
        ("analyze_ecg_batch", {"path": 123}),
        ("analyze_ecg_batch", {}),
        ("analyze_ecg_batch", {"path": "/etc/passwd"}),
        ("analyze_ecg_batch", {"content_base64": "A" * 200_000, "filename": "e.zip"}),
    ]))
    by_name = {t.name: t for t in tools.tools}
    assert {"analyze_ecg", "analyze_ecg_batch", "list_labels"} <= set(by_name)
    assert all(t.input_schema["additionalProperties"] is False for t in tools.tools)
    batch = by_name["analyze_ecg_batch"]
    assert {"path", "content_base64", "filename", "fs", "leads", "format", "units", "key", "lead", "all_labels",
            "include_embedding"} == set(batch.input_schema["properties"])
    assert {"n_ok", "n_failed", "items"} <= set(batch.output_schema["properties"])
    assert "analyze_ecg_batch" in by_name["analyze_ecg"].description
    usage = 'valid calls: {"path": "ecgs.zip"}'
    for res, expect in ((unknown, "signal: unknown argument (got an array of 1 item) (the arguments are path,"),
                        (typed, "path: Input should be a valid string (got integer 123)"),
                        (none, "give exactly one of path or content_base64 (with filename)")):
        text = _error_text(res)
        assert expect in text and usage in text and "\n" not in text and "pydantic" not in text, text
    assert "outside the directories" in _error_text(outside)
    assert "max_upload_bytes" in _error_text(too_big)
    assert list(tmp_path.iterdir()) == []


def test_mcp_relative_paths_are_read_under_the_allowed_directories(analyzer, tmp_path, monkeypatch):
    """The tool's own example is {"path": "ecg.xml"}, but a relative path was taken from the server's
    working directory, which the agent cannot know: with --mcp-dir elsewhere it was refused.  It is
    looked up under the allowed directories; symbolic links and '..' out of them are still refused.
    A negative member is told how members are counted."""
    allowed = tmp_path / "ecgs"
    (allowed / "sub").mkdir(parents=True)
    (allowed / "sub" / "ecg.xml").write_bytes(MUSE.read_bytes())
    (tmp_path / "secret.xml").write_bytes(MUSE.read_bytes())
    (allowed / "link.xml").symlink_to(tmp_path / "secret.xml")
    monkeypatch.chdir(tmp_path)  # the server's working directory is not the allowed one
    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path), allowed_dirs=(allowed,))
    _, rel, up, link, batch, negative = asyncio.run(_session(server, [
        ("analyze_ecg", {"path": "sub/ecg.xml"}),
        ("analyze_ecg", {"path": "../secret.xml"}),
        ("analyze_ecg", {"path": "link.xml"}),
        ("analyze_ecg_batch", {"path": "sub/ecg.xml"}),
        ("analyze_ecg", {"path": "sub/ecg.xml", "member": -1}),
    ]))
    assert not rel.is_error and rel.structured_content["record"]["format"] == "muse", rel.content[0].text
    assert not batch.is_error and batch.structured_content["n_ok"] == 1
    for res in (up, link):
        assert "outside the directories" in _error_text(res) and "relative path is read there" in _error_text(res)
    # (a negative member was told about inline signals, which it was not given)
    assert "counted from 0" in _error_text(negative) and "inline signal" not in _error_text(negative)


def test_mcp_path_on_a_server_with_no_directories_is_refused_in_words(analyzer, tmp_path):
    """A server started without directories it may read answered a relative path with an IndexError."""
    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path), allowed_dirs=())
    _, res = asyncio.run(_session(server, [("analyze_ecg", {"path": "ecg.xml"})]))
    assert "reads no files of its own" in _error_text(res) and "content_base64" in _error_text(res)


def test_mcp_a_folder_or_a_missing_path_is_answered_with_what_to_give(analyzer, tmp_path):
    """A folder was answered "is a directory, not a record file", a missing file "WFDB header x.hea not
    found": neither said what the agent could give instead, nor where the server looked."""
    allowed = tmp_path / "ecgs"
    (allowed / "day1").mkdir(parents=True)
    for k in range(5):
        (allowed / "day1" / f"r{k}.xml").write_bytes(MUSE.read_bytes())
    (allowed / "day1" / "notes.txt").write_text("not an ECG")
    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path), allowed_dirs=(allowed,))
    _, folder, batch, missing = asyncio.run(_session(server, [
        ("analyze_ecg", {"path": "day1"}),
        ("analyze_ecg_batch", {"path": "day1/"}),
        ("analyze_ecg", {"path": "day1/r9.hea"}),
    ]))
    for res in (folder, batch):  # (the batch tool answered with a failed item)
        text = _error_text(res)
        assert "a folder, not a file" in text and "(its ECG files: day1/r0.xml, day1/r1.xml, day1/r2.xml ... (5 in all))" in text
        assert "notes.txt" not in text
    assert f"day1/r9.hea: no such file under the directories this server may read ({allowed.resolve()})" in \
        _error_text(missing)


def test_mcp_key_picks_the_variable_of_a_matlab_file(analyzer, tmp_path):
    """A MATLAB file of several candidate variables: the reader's fix ('pass key=NAME') had no tool
    argument."""
    import numpy as np
    import scipy.io as sio

    t = np.arange(5000) / 500
    sig = np.stack([np.sin(2 * np.pi * 1.1 * t + k) for k in range(12)]) * 0.5
    f = tmp_path / "two.mat"
    sio.savemat(f, {"a": sig, "b": sig * 2})
    server = build_mcp_server(analyzer, ServeConfig(tmp_dir=tmp_path), allowed_dirs=(tmp_path,))
    _, no_key, keyed = asyncio.run(_session(server, [
        ("analyze_ecg", {"path": str(f), "fs": 500, "leads": STANDARD_12}),
        ("analyze_ecg", {"path": str(f), "fs": 500, "leads": STANDARD_12, "key": "b"}),
    ]))
    assert _error_text(no_key).endswith("pass the argument key=NAME")
    assert not keyed.is_error, keyed.content[0].text
    assert keyed.structured_content["record"]["format"] == "matlab"
