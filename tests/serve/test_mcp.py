"""The MCP tool, called through the MCP SDK's own client in-process (JSON-RPC over memory streams)."""

from __future__ import annotations

import asyncio
import base64

import pytest

pytest.importorskip("fastapi")
mcp = pytest.importorskip("mcp")

from servehelpers import DATA, MUSE, sine_signal  # noqa: E402

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

    from servehelpers import STANDARD_12

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
