"""The files of an uploaded zip archive that no recording of its answer came from (a README, an
image, an XML of no ECG dialect, macOS metadata, a second file of one path, ...): each named, in
the archive's terms, with why it was passed over, so that an answer accounts for every file.  Where
the reader put each file is its own rule (:func:`ecgfounder.io.compressed.member_path`)."""

from __future__ import annotations

import posixpath
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import RecordReadError
from ..io.compressed import COMPRESSIONS, is_numpy_zip, member_path, path_key
from ..io.detect import EXTENSIONS
from ..io.limits import decompressed_limit
from ..prediction.records import collected_warnings
from ..recording import Recording
from .uploads import WFDB_DATA, wfdb_header_names

__all__ = ["Skipped", "ArchiveTally", "passed_over"]

_SHOWN = 5  # files named in the item that counts those past the limit
_HEAD = 1 << 20  # bytes of a header read for the files it names (a record of thousands of segments)
_IN = " in the zip archive: "
_DEPTH = 3  # zip archives inside the uploaded one whose files are listed: at most this deep  # (the reader's words: "MEMBER in the zip archive: its error")


@dataclass(frozen=True)
class Skipped:
    """A file of an archive passed over: ``name`` (``ARCHIVE/member``), ``member`` (its path in the
    archive; ``None`` for the item counting the files past the listing's limit) and ``reason``
    (one line naming the archive and the file)."""

    name: str
    member: str | None
    reason: str


@dataclass
class ArchiveTally:
    """What reading one uploaded file yielded, as far as its archive's files go: the files (their
    paths in the archive, as the reader names them) that a recording or an error came from."""

    taken: set[str] = field(default_factory=set)
    archive: bool = False  # read as a zip archive whose files were looked at
    refused: bool = False  # the archive failed as a whole (unreadable, a bomb): nothing to account for

    def add(self, got: Recording | RecordReadError) -> None:
        if isinstance(got, Recording):
            if got.meta.get("compression") == "zip" and got.meta.get("archive_member"):
                self.archive = True
                self.taken.add(got.meta["archive_member"])
            return
        if got.member is not None:
            self.archive = True
            # a file of an archive inside this one is named in ``member`` as the inner archive names it:
            # the file of this archive is the one its reason starts with
            own = got.reason.startswith(got.member + _IN)
            self.taken.add(got.member if own else got.reason.partition(_IN)[0])
        elif got.reason.endswith("zip archive holds no ECG record files"):  # (the reader's words for it)
            self.archive = True
        else:
            self.refused = True


def passed_over(path: str | Path, shown: str, taken: set[str], *, limit: int) -> list[Skipped]:
    """The files of the zip archive at ``path`` (shown as ``shown``) that none of ``taken`` (the
    paths the reader named its recordings and errors after) is, nor part of one (a WFDB record's
    signal files, a multi-segment record's segments), in the archive's order, those of a zip
    archive inside it that was read (``INNER.zip/member``, up to :data:`_DEPTH` deep) after it: at
    most ``limit``, then one item counting the rest.  ``[]`` for a file that is not a zip archive."""
    with tempfile.TemporaryDirectory(prefix="ecgfounder-members-") as tmp:
        budget = [decompressed_limit(Path(path).stat().st_size)]  # (the reader's limit for this upload)
        out = _passed(Path(path), shown, "", taken, Path(tmp), budget, 0)
    if len(out) > limit:
        rest = out[limit:]
        names = ", ".join(s.member or "" for s in rest[:_SHOWN]) + (" ..." if len(rest) > _SHOWN else "")
        out = out[:limit] + [Skipped(f"{shown}/...", None, f"{shown}: {len(rest)} more files of the zip archive passed "
                                     f"over, not read as ECGs (each listed up to {limit}): {names}.")]
    return out


def _passed(path: Path, shown: str, prefix: str, taken: set[str], tmp: Path, budget: list[int], depth: int
            ) -> list[Skipped]:
    """:func:`passed_over` of the archive at ``path``, found at ``prefix`` (``''``, or ``INNER.zip/``
    for an archive ``depth`` deep inside the uploaded one) with every file, its inner archives' files after it."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            rels = [member_path(i.filename) for i in infos]  # where the reader extracted each (None: not)
            first: dict[str, int] = {}  # the path (any case) -> the member extracted there: the first
            for k, rel in enumerate(rels):
                if rel is not None:
                    first.setdefault(path_key(rel), k)
            stems, named = _records_read(zf, {rels[k]: infos[k] for k in first.values()}, taken)
            inner = [(infos[k], rel) for k, rel in enumerate(rels) if rel is not None and first[path_key(rel)] == k
                     and rel in taken and depth < _DEPTH and _is_zip(zf, infos[k], rel)]
            copies = [(rel, _copy(zf, info, tmp, budget)) for info, rel in inner]
    except (zipfile.BadZipFile, OSError, ValueError):
        return []
    where = f"in the zip archive {prefix[:-1]}" if prefix else "in the zip archive"
    out: list[Skipped] = []
    for k, (i, rel) in enumerate(zip(infos, rels)):
        m = i.filename.replace("\\", "/")
        if rel is None:
            why: str | None = _not_extracted(m)
        elif first[path_key(rel)] != k:
            same = infos[first[path_key(rel)]].filename.replace("\\", "/")
            why = (f"the same path as {same}, read in its place (names that differ only in letter case, '.', '..' or "
                   "'/' are one file here); send it in an archive of its own")
        else:
            why = _why(rel, taken, stems, named)
        if why is not None:
            out.append(Skipped(f"{shown}/{prefix}{m}", prefix + m, " ".join(
                f"{shown}: {m} {where}: passed over, not read as an ECG: {why}.".split())))
    for rel, copy in copies:  # an archive inside this one that was read: its own files not read
        if copy is not None:
            out += _passed(copy, shown, f"{prefix}{rel}/", _read_from(copy, budget), tmp, budget, depth + 1)
    return out


def _is_zip(zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str) -> bool:
    """Whether the file at ``rel`` is a zip archive the reader opens as one (``.zip``, or a zip's
    first bytes under no ECG format's extension; not NumPy's ``.npz``)."""
    ext = posixpath.splitext(rel.lower())[1]
    if ext == ".zip":
        return True
    if ext in EXTENSIONS:
        return False
    try:
        with zf.open(info) as fh:
            return fh.read(4) == b"PK\x03\x04"
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, ValueError):
        return False


def _copy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, tmp: Path, budget: list[int]) -> Path | None:
    """The archive ``info`` of ``zf`` copied into ``tmp`` (``None``: it cannot be, or it exceeds what
    is left of ``budget``, the decompression limit of the upload, shared as the reader shares it)."""
    if info.file_size > budget[0]:
        return None
    dest = tmp / f"{len(list(tmp.iterdir()))}.zip"
    try:
        with zf.open(info) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, ValueError):
        return None
    budget[0] -= dest.stat().st_size
    return None if is_numpy_zip(dest) else dest


def _read_from(archive: Path, budget: list[int]) -> set[str]:
    """The paths in ``archive`` of the files the reader reads (or fails to): those its own rule,
    :func:`ecgfounder.io.detect.find_records`, finds among the files it extracts, and those it cannot
    extract (each a failure of its own)."""
    from ..io.compressed import expanded
    from ..io.detect import find_records

    try:
        with collected_warnings(), expanded(archive, [budget[0], budget[0], archive.stat().st_size]) as (
                folder, _, not_extracted):  # (the files find passes over: listed here, not warned of)
            return {t.relative_to(folder).as_posix() for t in find_records([folder])} | set(not_extracted)
    except (RecordReadError, OSError, ValueError):
        return set()


def _records_read(zf: zipfile.ZipFile, extracted: dict[str, zipfile.ZipInfo], taken: set[str]
                  ) -> tuple[set[str], set[str]]:
    """The WFDB headers read (their paths less ``.hea``) and the files they name (paths in the
    archive, beside each header), with the segments of a multi-segment record (their headers named
    without ``.hea``) and what those name; all lower-case."""
    heads = {r.lower(): r for r in extracted if r.lower().endswith(".hea")}
    todo = [r for r in taken if r.lower() in heads and heads[r.lower()] == r]
    done: set[str] = set()
    stems: set[str] = set()
    named: set[str] = set()
    while todo:
        h = todo.pop()
        if h in done:
            continue
        done.add(h)
        stems.add(posixpath.splitext(h)[0].lower())
        try:
            with zf.open(extracted[h]) as fh:
                names = wfdb_header_names(fh.read(_HEAD))
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, ValueError):
            continue
        files = {posixpath.normpath(posixpath.join(posixpath.dirname(h.lower()), n)) for n in names}
        named |= files
        todo += [heads[n + ".hea"] for n in files if n + ".hea" in heads]
    return stems, named


def _not_extracted(m: str) -> str:
    """Why the member ``m``, which the reader does not extract, was passed over."""
    parts = [x for x in m.split("/") if x not in ("", ".", "..")]
    if parts[:1] == ["__MACOSX"] or (parts[:1] and parts[0].endswith(":") and parts[1:2] == ["__MACOSX"]):
        return "macOS metadata (its __MACOSX folder)"
    if parts and parts[-1].startswith("."):
        return "a hidden file (its name starts with '.')"
    return "a name of no file (nothing but '/', '.', '..' or a drive letter)"


def _why(rel: str, taken: set[str], stems: set[str], named: set[str]) -> str | None:
    """Why the file extracted at ``rel`` was passed over; ``None`` when it was read."""
    p = PurePosixPath(rel)
    stem, ext = posixpath.splitext(rel.lower())
    if rel in taken or rel.lower() in named or (ext == ".hea" and stem in named) or (ext in WFDB_DATA and stem in stems):
        return None
    if ext in WFDB_DATA:
        return f"a WFDB signal file without its header; put {p.stem}.hea in the archive with it"
    fix = "send it as a file of its own to read it as one (its error then says why it cannot be)"
    if EXTENSIONS.get(ext) == "xml":
        return f"an XML of no known ECG dialect (GE MUSE, HL7 aECG, Philips, CardioSoft); {fix}"
    if EXTENSIONS.get(ext) == "csv":
        return f"a CSV/TSV table without lead-like column names; {fix}"
    if stem in stems:
        return f"beside the WFDB record {p.stem}.hea but not one of its signal files (an annotation?)"
    if ext in EXTENSIONS or ext == ".zip":
        return "no recording was read from it"
    if ext in COMPRESSIONS:  # x.txt.gz: what it holds
        ext = "".join(p.suffixes[-2:]).lower()
    return f"a '{ext}' file, of no ECG format this service reads" if ext else \
        "a file without extension, of no ECG format this service reads"
