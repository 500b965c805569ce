"""The analysis as an MCP tool (Model Context Protocol), for LLM agents.

Tools: ``analyze_ecg`` (a file on the server under the allowed directories, a base64 file, or an
inline signal → the same :class:`~ecgfounder.serve.schema.Prediction` the HTTP service answers,
with its JSON schema as the tool's output schema), ``analyze_ecg_batch`` (a file of several
recordings: a zip of ECG files, an HDF5/NumPy batch → a :class:`~ecgfounder.serve.schema.BatchResponse`,
one item per recording, and one per file of a zip passed over, as ``/v1/predict/batch`` answers) and
``list_labels``.
Run over stdio with ``ecgfounder serve --mcp`` (or :func:`ecgfounder.serve.run_mcp`).

Bad arguments (a wrong type, an unknown name, a wrong combination) are answered with one line naming
the argument, the value given and a valid call; library messages name the tool's arguments.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Iterator, TypeVar

from .adapter import Analyzer
from .config import ServeConfig
from .members import Skipped
from .schema import BatchItem, BatchResponse, LabelsResponse, Prediction, SignalRequest, validation_line
from .service import InputError, Options, Service
from .terms import WFDB_BESIDE, Terms
from .uploads import safe_name

from pydantic import ValidationError

from mcp.server.mcpserver import MCPServer  # mcp >= 2 (FastMCP of mcp 1.x, renamed)
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError

from ..errors import ECGFounderError

__all__ = ["build_mcp_server"]

_TOP_LABELS = 10
_FILE_TERMS = Terms("the argument", frozenset({"fs", "leads", "format", "units", "key", "lead"}),
                    rewrites=((WFDB_BESIDE, "give the header's path with its signal files beside it, or send the "
                                            "header and its signal files together in a zip as content_base64"),))
_SIGNAL_TERMS = Terms("the argument", frozenset({"fs", "leads", "lead"}))
# a valid call of each tool, quoted in the answer to a bad one
_EXAMPLES = {
    "analyze_ecg": 'valid calls: {"path": "ecg.xml"}, {"content_base64": "<base64 of the file>", "filename": '
                   '"ecg.xml"} or {"signal": [[0.01, 0.02, ...], ...], "fs": 500, "leads": ["I", ...]}',
    "analyze_ecg_batch": 'valid calls: {"path": "ecgs.zip"} or {"content_base64": "<base64 of the file>", '
                         '"filename": "ecgs.h5"}',
    "list_labels": "valid call: {}",
}
# analyze_ecg's fix for a file of several recordings
_SEVERAL = ("call analyze_ecg_batch with the same path or content_base64, which answers for each, or give member "
            "(0 for the first) to analyse one")
_T = TypeVar("_T")
_FOLDER_LOOK = 10_000  # entries of a folder given as a path looked at for ECG files to name


class _Server(MCPServer):
    """An :class:`MCPServer` that answers arguments failing the tool's schema with one line (the
    argument, what was given, what is expected, a valid call), not pydantic's multi-line report, and
    refuses unknown arguments (the SDK ignores them: a misspelt one would change nothing)."""

    async def list_tools(self) -> list:
        tools = await super().list_tools()
        for t in tools:  # said in the schema too: agents read it before calling
            t.input_schema = {**t.input_schema, "additionalProperties": False}
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        tool = next((t for t in await super().list_tools() if t.name == name), None)
        if tool is not None:
            known = tool.input_schema.get("properties", {})
            unknown = [{"loc": (k,), "type": "extra_forbidden", "input": v}
                       for k, v in arguments.items() if k not in known]
            if unknown:
                raise ToolError(_invalid(name, unknown, f"the arguments are {', '.join(known) or 'none'}; "))
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc, UnexpectedToolError) or not isinstance(exc.__cause__, ValidationError):
                raise
            raise ToolError(_invalid(name, exc.__cause__.errors())) from exc.__cause__


def _invalid(tool: str, errors: list[dict], known: str = "") -> str:
    line = validation_line(errors, what="arguments", noun="argument",
                           fix=known + _EXAMPLES.get(tool, "see the tool's input schema"))
    return f"Error executing tool {tool}: {line}"  # the SDK's prefix of every tool error


def build_mcp_server(analyzer: Analyzer, config: ServeConfig | None = None, *,
                     allowed_dirs: tuple[str | os.PathLike, ...] = (".",)) -> Any:
    """An MCP server (``mcp`` SDK) whose tools analyse ECGs with ``analyzer``.

    ``allowed_dirs``: the only directories whose files ``analyze_ecg(path=...)`` may read.
    """
    cfg = config or ServeConfig()
    service = Service(analyzer, cfg, file_terms=_FILE_TERMS, signal_terms=_SIGNAL_TERMS)
    roots = tuple(Path(d).resolve() for d in allowed_dirs)
    server = _Server("ecgfounder", instructions=(
        "Analyse 12-lead (or 1-lead) ECGs with the ECGFounder model: call analyze_ecg for one recording (a file "
        "path, a base64-encoded file, or an inline signal in millivolts), analyze_ecg_batch for a file holding "
        "several (a zip of ECG files, an HDF5 or NumPy batch): one answer per recording. Findings are labels "
        "whose probability reaches the operating threshold. Research use only, not a medical device."))

    async def _started() -> Service:
        if not service.ready:
            await service.start()
        return service

    @asynccontextmanager
    async def _file(path: str | None, content_base64: str | None,
                    filename: str | None) -> AsyncIterator[tuple[Path, str]]:
        """The file to read and the name its answers and errors show: ``path`` (under the allowed
        directories), or ``content_base64`` written to a temporary file removed on exit."""
        if path is not None:
            yield _a_file(path, _allowed(path, roots), roots), Path(path).name
        else:
            with _decoded(content_base64, filename, cfg) as p:
                yield p, filename or ""

    @server.tool(description=(
        "Analyse one ECG recording. Give exactly one of: 'path' (a file on the server under its allowed "
        "directories, a relative path taken there; any supported "
        "format: WFDB .hea, GE MUSE/HL7 aECG/Philips XML, DICOM, SCP-ECG, EDF, CSV, NumPy, HDF5), "
        "'content_base64' with 'filename' (its extension selects the reader), or 'signal' "
        "(leads × samples in mV) with 'fs' (Hz) and 'leads'. For a file that does not store them (CSV, "
        "NumPy, MATLAB), 'fs' and 'leads' give its rate and lead names, 'units' its amplitude unit (mV, uV); "
        "'format' forces a reader; 'key' names the NumPy .npz entry or MATLAB variable holding the signals; 'lead', for a "
        "single-lead model, the recording's lead fed in place of the model's own (e.g. II). Returns the findings above threshold, "
        f"the {_TOP_LABELS} most probable labels (all 150 with all_labels=true), signal-quality flags "
        "and the model's identity and preprocessing contract. For a file holding several recordings (a zip "
        "of ECG files, an HDF5 or NumPy batch) give 'member' (0-based) to analyse one of them, or use "
        "analyze_ecg_batch for all."))
    async def analyze_ecg(path: str | None = None, content_base64: str | None = None, filename: str | None = None,
                          signal: list[list[float]] | None = None, fs: float | None = None,
                          leads: list[str] | None = None, format: str | None = None, units: str | None = None,
                          key: str | None = None, member: int | None = None, lead: str | None = None,
                          all_labels: bool = False, include_embedding: bool = False) -> Prediction:
        read = _read_options(fs, leads, format, units, key)
        opts = Options(embedding=include_embedding, lead=lead)
        answer = await _one_line(_analyze(path, content_base64, filename, signal, read, member, opts))
        return _trimmed(answer, all_labels)

    async def _analyze(path: str | None, content_base64: str | None, filename: str | None,
                       signal: list[list[float]] | None, read: dict[str, Any], member: int | None,
                       opts: Options) -> Prediction:
        usage = _EXAMPLES["analyze_ecg"]
        given = [x is not None for x in (path, content_base64, signal)]
        if sum(given) != 1:
            raise ValueError(f"give exactly one of path, content_base64 (with filename) or signal (with fs and "
                             f"leads); {usage}.")
        _filename_alone(filename, content_base64, usage)
        if member is not None and signal is not None:
            raise ValueError(f"member={member}: member picks one recording (0 for the first) of a file holding several "
                             f"(path or content_base64); an inline signal is one recording: leave member out; {usage}.")
        if member is not None and member < 0:
            raise ValueError(f"member={member}: recordings are counted from 0 (the first); give 0 or more, or leave "
                             "member out for a file of one recording.")
        if signal is None:
            async with _file(path, content_base64, filename) as (p, name):
                svc = await _started()
                if member is not None:
                    return await svc.analyze_member(p, member, filename=name, read_kwargs=read, options=opts)
                return await svc.analyze_file(p, filename=name, read_kwargs=read, options=opts, several=_SEVERAL)
        if "fs" not in read or "leads" not in read:
            raise ValueError(f"an inline signal needs fs (Hz) and leads (one name per row); {usage}.")
        if {"format", "units", "key"} & set(read):
            raise ValueError(f"format, units and key apply to a file (path or content_base64); an inline signal is "
                             f"in mV and needs no reader; {usage}.")
        try:
            req = SignalRequest(signal=signal, **read)
        except ValidationError as exc:  # one line naming the field, not pydantic's multi-line report
            raise InputError(validation_line(exc.errors(), what="inline signal", fix="give signal as leads × samples "
                                             "in mV, fs > 0 in Hz and one lead name per row")) from None
        return await (await _started()).analyze_signal(req, opts)

    @server.tool(description=(
        "Analyse every recording of one file holding several: a zip of ECG files (each in any format "
        "analyze_ecg reads) or an HDF5/NumPy batch (recordings × samples × leads). Give exactly one of "
        "'path' (a file on the server) or 'content_base64' with 'filename'; 'fs', 'leads', 'units', "
        "'format', 'key', 'lead', 'all_labels' and 'include_embedding' as for analyze_ecg. Returns one item per "
        "recording, in order, named FILE#k (a file of one recording: one item named FILE), each with "
        "ok and either its result (as analyze_ecg answers) or its one-line error: one bad recording "
        f"does not stop the others. At most {cfg.max_files} recordings per file; a larger file ends "
        "with an error item. Each file of a zip not read as an ECG (a README, an image, an XML of no ECG "
        "dialect) follows as an item of status 'skipped', named ZIP/MEMBER, with why (not counted in "
        "n_failed). For one recording or an inline signal, use analyze_ecg."))
    async def analyze_ecg_batch(path: str | None = None, content_base64: str | None = None,
                                filename: str | None = None, fs: float | None = None, leads: list[str] | None = None,
                                format: str | None = None, units: str | None = None, key: str | None = None,
                                lead: str | None = None, all_labels: bool = False,
                                include_embedding: bool = False) -> BatchResponse:
        read = _read_options(fs, leads, format, units, key)
        opts = Options(embedding=include_embedding, lead=lead)
        found = await _one_line(_analyze_batch(path, content_base64, filename, read, opts))
        return BatchResponse.of([BatchItem.of(name, _trimmed(got, all_labels) if isinstance(got, Prediction) else got)
                                 for name, got in found])

    async def _analyze_batch(path: str | None, content_base64: str | None, filename: str | None,
                             read: dict[str, Any],
                             opts: Options) -> list[tuple[str, Prediction | ECGFounderError | Skipped]]:
        usage = _EXAMPLES["analyze_ecg_batch"]
        if (path is None) == (content_base64 is None):
            raise ValueError(f"give exactly one of path or content_base64 (with filename); {usage}.")
        _filename_alone(filename, content_base64, usage)
        async with _file(path, content_base64, filename) as (p, name):
            return await (await _started()).analyze_members(p, filename=name, read_kwargs=read,
                                                            options=opts,
                                                            limit=cfg.max_files)

    @server.tool(description="The labels the model outputs, with their operating thresholds and the model identity.")
    async def list_labels() -> LabelsResponse:
        return service.labels_response()

    server.ecgfounder_service = service  # for tests and embedding applications
    return server


def _allowed(path: str, roots: tuple[Path, ...]) -> Path:
    """``path`` resolved (symbolic links followed) if it lies under one of ``roots``; a relative path
    is taken under the first root holding it (the agent does not know the server's working directory)."""
    if not roots:
        raise InputError(f"{path}: this server reads no files of its own (it was started without directories it "
                         "may read); send the file as content_base64 with its filename.")
    given = Path(path).expanduser()
    found = [given.resolve()] if given.is_absolute() else [(r / given).resolve() for r in roots]
    p = next((q for q in found if q.exists()), found[0])
    if not any(p.is_relative_to(r) for r in roots):
        raise InputError(f"{path}: outside the directories this server may read ({', '.join(map(str, roots))}); "
                         "give a path under one of them (a relative path is read there), or send the file as "
                         "content_base64.")
    return p


def _a_file(path: str, p: Path, roots: tuple[Path, ...]) -> Path:
    """``p`` (``path`` resolved under the allowed ``roots``) if it is a file; an :class:`InputError`
    saying what to give instead for a folder (some of its ECG files) or a path where nothing is."""
    if p.is_dir():
        from itertools import islice

        from ..io.detect import EXTENSIONS

        seen = list(islice(p.rglob("*"), _FOLDER_LOOK))  # (a folder of a million files is not walked through)
        ecgs = sorted(q.relative_to(p).as_posix() for q in seen if q.suffix.lower() in {*EXTENSIONS, ".zip"} and q.is_file())
        n = f"{len(ecgs)} in all" if len(seen) < _FOLDER_LOOK else f"{len(ecgs)} in its first {_FOLDER_LOOK} entries"
        some = ", ".join(f"{path.rstrip('/')}/{q}" for q in ecgs[:3]) + (f" ... ({n})" if len(ecgs) > 3 else "")
        raise InputError(f"{path}: a folder, not a file; give the path of one file: a recording to analyze_ecg, a zip or "
                         "an HDF5/NumPy batch of several to analyze_ecg_batch" +
                         (f" (its ECG files: {some})." if ecgs else " (it holds no ECG file)."))
    if not p.exists():
        raise InputError(f"{path}: no such file under the directories this server may read "
                         f"({', '.join(map(str, roots))}); give a path under one of them (a relative path is read "
                         "there), or send the file as content_base64.")
    return p


def _read_options(fs: float | None, leads: list[str] | None, format: str | None,
                  units: str | None, key: str | None = None) -> dict[str, Any]:
    """The reader's arguments given to a tool."""
    return {k: v for k, v in (("fs", fs), ("leads", leads), ("format", format), ("units", units), ("key", key))
            if v is not None}


def _filename_alone(filename: str | None, content_base64: str | None, usage: str) -> None:
    if filename is not None and content_base64 is None:
        raise ValueError(f"filename goes with content_base64 (its extension tells the format); a path is read "
                         f"under its own name; {usage}.")


async def _one_line(coro: Awaitable[_T]) -> _T:
    """``coro``'s answer; its reason for refusing the input reaches the agent as one line (crashes
    stay on the server)."""
    try:
        return await coro
    except (ValueError, ECGFounderError) as exc:
        raise ToolError(" ".join(str(exc).split())) from None


def _trimmed(answer: Prediction, all_labels: bool) -> Prediction:
    """``answer`` with its labels cut to the most probable :data:`_TOP_LABELS`, unless ``all_labels``."""
    if not all_labels:
        answer.labels = sorted(answer.labels, key=lambda s: -s.probability)[:_TOP_LABELS]
    return answer


@contextmanager
def _decoded(content: str | None, filename: str | None, cfg: ServeConfig) -> Iterator[Path]:
    """``content`` (base64) decoded into a temporary file named after ``filename``, removed on exit."""
    if not filename:
        raise ValueError("content_base64 needs filename (its extension tells the format, e.g. ecg.xml).")
    if len(content or "") > cfg.max_upload_bytes * 4 // 3 + 4:
        raise InputError(f"{filename}: content_base64 of {len(content or '')} characters holds more than the server's "
                         f"limit of {cfg.max_upload_bytes} bytes (its max_upload_bytes); send a smaller file, or put "
                         "it under the directories this server reads and give its path.")
    try:
        # line breaks and spaces are allowed (the output of the `base64` command is wrapped at 76 columns)
        data = base64.b64decode("".join((content or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{filename}: content_base64 is not valid base64; send the file's bytes encoded with "
                         "standard base64 (RFC 4648, alphabet A-Z a-z 0-9 + /, '=' padding).") from None
    with tempfile.TemporaryDirectory(prefix="ecgfounder-mcp-", dir=cfg.tmp_dir) as tmp:
        p = Path(tmp) / safe_name(filename, 0)
        p.write_bytes(data)
        yield p
