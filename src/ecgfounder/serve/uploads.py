"""Request bodies: a size limit enforced while the bytes arrive, and uploaded files written to a
temporary directory under safe names (with their extension, which format detection uses)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..errors import ECGFounderError
from ..io.compressed import COMPRESSIONS
from ..io.detect import EXTENSIONS

__all__ = ["BodyLimitMiddleware", "save_uploads", "group_records", "UploadError", "UnsupportedMediaType", "safe_name",
           "wfdb_header_names", "WFDB_DATA"]

_CHUNK = 1 << 20
WFDB_DATA = (".dat", ".mat")


class UploadError(ECGFounderError, ValueError):
    """The upload itself is unusable (no file, duplicate names, ...); answered with ``422``."""


class UnsupportedMediaType(UploadError):
    """The body is of a media type the endpoint does not take (its ``Content-Type``); answered with ``415``."""


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with ``413``.

    A declared ``Content-Length`` over the limit is refused before a byte of the body is read; a
    body without one (chunked) is counted as it streams in and refused as soon as it passes the
    limit, so a 200 MB upload is never read whole.  ``on_reject()`` is called for each refusal.
    """

    def __init__(self, app: Any, max_bytes: int, on_reject: Callable[[], None] | None = None) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)
        self.on_reject = on_reject

    async def _refuse(self, send: Callable[[dict], Awaitable[None]], declared: int | None) -> None:
        if self.on_reject is not None:
            self.on_reject()
        size = f"of {declared} bytes " if declared is not None else ""  # (a chunked body: refused as it passed)
        body = json.dumps({"detail": f"request body {size}exceeds the server's limit of {self.max_bytes} "
                                     "bytes (its max_upload_bytes); send a smaller file."}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = None
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = None
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, declared)
            return
        received = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge()
            return msg

        async def tracking_send(msg: dict) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send, None)


def safe_name(name: str | None, index: int) -> str:
    """A file name safe to create in our directory: base name only, ``[A-Za-z0-9._-]``, ≤ 120 chars,
    the extension kept."""
    base = Path(str(name or "")).name
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[-120:]
    return base or f"upload_{index}"


async def save_uploads(files: list[Any], directory: Path,
                       errors: list[tuple[str, str]] | None = None) -> list[tuple[Path, str]]:
    """Write the uploaded files (Starlette ``UploadFile``) into ``directory``; ``(path, original name)``.

    A file that cannot be kept (its safe name taken by an earlier file) raises :class:`UploadError`,
    or, when ``errors`` is given (a batch), is left out and reported there as ``(name, reason)``."""
    if not files:
        raise UploadError("no file in the request; send the recording as multipart field 'file' "
                          "(or a JSON body {signal, fs, leads}).")
    out: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for i, up in enumerate(files):
        name = safe_name(getattr(up, "filename", None), i)
        orig = str(getattr(up, "filename", None) or name)
        if name.lower() in seen:
            _reject(errors, orig, f"two uploaded files are both named {name!r}; give each file its own name.")
            continue
        seen.add(name.lower())
        path = directory / name
        with open(path, "wb") as fh:
            while chunk := await up.read(_CHUNK):
                fh.write(chunk)
        out.append((path, orig))
    return out


def group_records(saved: list[tuple[Path, str]],
                  errors: list[tuple[str, str]] | None = None) -> list[tuple[Path, str]]:
    """One entry per record: a WFDB header and its files (same stem: .dat, .mat, any other file the header
    names, such as PTB's .xyz, and any of no ECG format, such as its .atr annotations) become the header;
    every other file is a record of its own.  A WFDB data file without its header is refused:
    :class:`UploadError`, or, when ``errors`` is given (a batch), left out and reported there as
    ``(name, reason)``.  (A header naming files elsewhere is refused by the reader itself.)"""
    by_stem: dict[str, list[tuple[Path, str]]] = {}
    for p, orig in saved:
        by_stem.setdefault(p.stem.lower(), []).append((p, orig))
    named = {n for p, _ in saved if p.suffix.lower() == ".hea" for n in _header_files(p)}
    records: list[tuple[Path, str]] = []
    for p, orig in saved:
        group = by_stem[p.stem.lower()]
        headers = [g for g in group if g[0].suffix.lower() == ".hea"]
        if headers:
            if p.suffix.lower() == ".hea":
                records.append((p, orig))
            elif p.suffix.lower() not in WFDB_DATA and p.name.lower() not in named and _ecg_format(p):
                records.append((p, orig))  # (PTB's .xyz: named by the header; an .atr: no ECG format, the record's)
        elif p.suffix.lower() == ".dat":
            _reject(errors, orig, f"{orig}: a WFDB data file without its header; upload {p.stem}.hea with it.")
        else:
            records.append((p, orig))
    return records


def _ecg_format(p: Path) -> bool:
    """Whether ``p``'s extension (a compressed file's inner one) is of an ECG format the readers know."""
    suffixes = [x.lower() for x in p.suffixes]
    if suffixes[-1:] and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    return bool(suffixes) and (suffixes[-1] in EXTENSIONS or suffixes[-1] == ".zip")


def _header_files(header: Path) -> set[str]:
    """The signal file names the WFDB header at ``header`` lists, lower-case."""
    try:
        with open(header, "rb") as fh:
            return wfdb_header_names(fh.read(65536))
    except OSError:
        return set()


def wfdb_header_names(head: bytes) -> set[str]:
    """The first field of each signal line of a WFDB header (its start ``head``), lower-case: the
    signal files it names (a multi-segment record's: its segments, named without ``.hea``)."""
    lines = [ln.split() for ln in head.decode("utf-8", "replace").splitlines()]
    lines = [ln for ln in lines if ln and not ln[0].startswith("#")]
    return {ln[0].lower() for ln in lines[1:]}


def _reject(errors: list[tuple[str, str]] | None, name: str, reason: str) -> None:
    if errors is None:
        raise UploadError(reason)
    errors.append((name, reason))
