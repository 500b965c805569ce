"""The analysis as an MCP tool (Model Context Protocol), for LLM agents.

Tools: ``analyze_ecg`` (a file on the server under the allowed directories, a base64 file, or an
inline signal → the same :class:`~ecgfounder.serve.schema.Prediction` the HTTP service answers,
with its JSON schema as the tool's output schema) and ``list_labels``.
Run over stdio with ``ecgfounder serve --mcp`` (or :func:`ecgfounder.serve.run_mcp`).
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from pathlib import Path
from typing import Any

from .adapter import Analyzer
from .config import ServeConfig
from .schema import LabelsResponse, Prediction, SignalRequest, validation_line
from .service import InputError, Options, Service
from .uploads import safe_name

from pydantic import ValidationError

from mcp.server.mcpserver import MCPServer  # mcp >= 2 (FastMCP of mcp 1.x, renamed)
from mcp.server.mcpserver.exceptions import ToolError

from ..errors import ECGFounderError

__all__ = ["build_mcp_server"]

_TOP_LABELS = 10


def build_mcp_server(analyzer: Analyzer, config: ServeConfig | None = None, *,
                     allowed_dirs: tuple[str | os.PathLike, ...] = (".",)) -> Any:
    """An MCP server (``mcp`` SDK) whose tools analyse ECGs with ``analyzer``.

    ``allowed_dirs``: the only directories whose files ``analyze_ecg(path=...)`` may read.
    """
    cfg = config or ServeConfig()
    service = Service(analyzer, cfg)
    roots = tuple(Path(d).resolve() for d in allowed_dirs)
    server = MCPServer("ecgfounder", instructions=(
        "Analyse 12-lead (or 1-lead) ECGs with the ECGFounder model: call analyze_ecg with a file path, "
        "a base64-encoded file, or an inline signal in millivolts. Findings are labels whose probability "
        "reaches the operating threshold. Research use only, not a medical device."))

    async def _started() -> Service:
        if not service.ready:
            await service.start()
        return service

    @server.tool(description=(
        "Analyse one ECG recording. Give exactly one of: 'path' (a file on the server, any supported "
        "format: WFDB .hea, GE MUSE/HL7 aECG/Philips XML, DICOM, SCP-ECG, EDF, CSV, NumPy, HDF5), "
        "'content_base64' with 'filename' (its extension selects the reader), or 'signal' "
        "(leads × samples in mV) with 'fs' (Hz) and 'leads'. Returns the findings above threshold, "
        f"the {_TOP_LABELS} most probable labels (all 150 with all_labels=true), signal-quality flags "
        "and the model's identity and preprocessing contract."))
    async def analyze_ecg(path: str | None = None, content_base64: str | None = None, filename: str | None = None,
                          signal: list[list[float]] | None = None, fs: float | None = None,
                          leads: list[str] | None = None, all_labels: bool = False,
                          include_embedding: bool = False) -> Prediction:
        try:
            return await _analyze(path, content_base64, filename, signal, fs, leads, all_labels, include_embedding)
        except (ValueError, ECGFounderError) as exc:  # the reason reaches the agent (crashes stay on the server)
            raise ToolError(" ".join(str(exc).split())) from None

    async def _analyze(path: str | None, content_base64: str | None, filename: str | None,
                       signal: list[list[float]] | None, fs: float | None, leads: list[str] | None,
                       all_labels: bool, include_embedding: bool) -> Prediction:
        given = [x is not None for x in (path, content_base64, signal)]
        if sum(given) != 1:
            raise ValueError("give exactly one of path, content_base64 (with filename) or signal (with fs and leads).")
        svc = await _started()
        opts = Options(embedding=include_embedding)
        if signal is not None:
            if fs is None or leads is None:
                raise ValueError("an inline signal needs fs (Hz) and leads (one name per row).")
            try:
                req = SignalRequest(signal=signal, fs=fs, leads=leads)
            except ValidationError as exc:  # one line naming the field, not pydantic's multi-line report
                raise InputError(validation_line(exc.errors(), what="inline signal", fix="give signal as leads × samples in mV, fs > 0 in Hz and one lead name per row")) from None
            answer = await svc.analyze_signal(req, opts)
        elif path is not None:
            answer = await svc.analyze_file(_allowed(path, roots), filename=Path(path).name, options=opts)
        else:
            answer = await _from_base64(svc, content_base64, filename, cfg, opts)
        if not all_labels:
            answer.labels = sorted(answer.labels, key=lambda s: -s.probability)[:_TOP_LABELS]
        return answer

    @server.tool(description="The labels the model outputs, with their operating thresholds and the model identity.")
    async def list_labels() -> LabelsResponse:
        return service.labels_response()

    server.ecgfounder_service = service  # for tests and embedding applications
    return server


def _allowed(path: str, roots: tuple[Path, ...]) -> Path:
    p = Path(path).expanduser().resolve()
    if not any(p.is_relative_to(r) for r in roots):
        raise InputError(f"{path}: outside the directories this server may read ({', '.join(map(str, roots))}); "
                         "copy the file there or send it as content_base64.")
    return p


async def _from_base64(svc: Service, content: str | None, filename: str | None, cfg: ServeConfig,
                       opts: Options) -> Prediction:
    if not filename:
        raise ValueError("content_base64 needs filename (its extension tells the format, e.g. ecg.xml).")
    if len(content or "") > cfg.max_upload_bytes * 4 // 3 + 4:
        raise InputError(f"{filename}: larger than the server's limit of {cfg.max_upload_bytes} bytes.")
    try:
        # line breaks and spaces are allowed (the output of the `base64` command is wrapped at 76 columns)
        data = base64.b64decode("".join((content or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{filename}: content_base64 is not valid base64; send the file's bytes encoded with "
                         "standard base64 (RFC 4648, alphabet A-Z a-z 0-9 + /, '=' padding).") from None
    with tempfile.TemporaryDirectory(prefix="ecgfounder-mcp-", dir=cfg.tmp_dir) as tmp:
        p = Path(tmp) / safe_name(filename, 0)
        p.write_bytes(data)
        return await svc.analyze_file(p, filename=filename, options=opts)
