"""The files of an uploaded zip archive that no recording of its answer came from (a README, an
image, an XML of no ECG dialect, macOS metadata, a second file of the same name, ...): each named,
in the archive's terms, with why it was passed over, so that an answer accounts for every file."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import RecordReadError
from ..io.compressed import COMPRESSIONS
from ..io.detect import EXTENSIONS
from ..recording import Recording
from .uploads import WFDB_DATA, wfdb_header_names

__all__ = ["Skipped", "ArchiveTally", "passed_over"]

_SHOWN = 5  # files named in the item that counts those past the limit
_HEAD = 1 << 20  # bytes of a header read for the files it names (a record of thousands of segments)


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
    """What reading one uploaded file yielded, as far as its archive's files go: the files
    (base names, as the reader names them) that a recording or an error came from."""

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
            self.taken.add(got.member)
            # a zip inside the archive names its own files in ``member``; the reason starts with its name
            head, sep, _ = got.reason.partition(" in the zip archive: ")
            if sep:
                self.taken.add(head)
        elif got.reason.endswith("zip archive holds no ECG record files"):  # (the reader's words for it)
            self.archive = True
        else:
            self.refused = True


def passed_over(path: str | Path, shown: str, taken: set[str], *, limit: int) -> list[Skipped]:
    """The files of the zip archive at ``path`` (shown as ``shown``) that none of ``taken`` (the
    base names the reader named its recordings and errors after) is, nor part of one (a WFDB
    record's signal files, a multi-segment record's segments), in the archive's order: at most
    ``limit``, then one item counting the rest.  ``[]`` for a file that is not a zip archive."""
    try:
        with zipfile.ZipFile(path) as zf:
            files = [(i, i.filename.replace("\\", "/")) for i in zf.infolist() if not i.is_dir()]
            first: dict[str, str] = {}  # base name -> the member extracted under it (the reader flattens folders)
            for i, m in files:
                b = PurePosixPath(m).name
                if b and not b.startswith(".") and not i.filename.startswith("__MACOSX"):
                    first.setdefault(b, m)
            stems, named = _records_read(zf, {m: i for i, m in files}, first, taken)
    except (zipfile.BadZipFile, OSError, ValueError):
        return []
    out: list[Skipped] = []
    for i, m in files:
        b = PurePosixPath(m).name
        if not b:
            continue
        why = _why(i, m, b, first, taken, stems, named)
        if why is not None:
            out.append(Skipped(f"{shown}/{m}", m, " ".join(
                f"{shown}: {m} in the zip archive: passed over, not read as an ECG: {why}.".split())))
    if len(out) > limit:
        rest = out[limit:]
        names = ", ".join(s.member or "" for s in rest[:_SHOWN]) + (" ..." if len(rest) > _SHOWN else "")
        out = out[:limit] + [Skipped(f"{shown}/...", None, f"{shown}: {len(rest)} more files of the zip archive passed "
                                     f"over, not read as ECGs (each listed up to {limit}): {names}.")]
    return out


def _records_read(zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], first: dict[str, str],
                  taken: set[str]) -> tuple[set[str], set[str]]:
    """The stems of the WFDB headers read and the file names (lower-case) they name, with the
    segments of a multi-segment record (their headers named without ``.hea``) and what those name."""
    heads = {b.lower(): b for b in first if b.lower().endswith(".hea")}
    todo = [b for b in taken if b in heads.values()]
    stems: set[str] = set()
    named: set[str] = set()
    while todo:
        h = todo.pop()
        if PurePosixPath(h).stem.lower() in stems:
            continue
        stems.add(PurePosixPath(h).stem.lower())
        try:
            with zf.open(infos[first[h]]) as fh:
                names = wfdb_header_names(fh.read(_HEAD))
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, ValueError):
            continue
        named |= names
        todo += [heads[n + ".hea"] for n in names if n + ".hea" in heads]
    return stems, named


def _why(info: zipfile.ZipInfo, m: str, b: str, first: dict[str, str], taken: set[str], stems: set[str],
         named: set[str]) -> str | None:
    """Why the file ``m`` (base name ``b``) was passed over; ``None`` when it was read."""
    p = PurePosixPath(b)
    ext, stem = p.suffix.lower(), p.stem.lower()
    if info.filename.startswith("__MACOSX"):
        return "macOS metadata (its __MACOSX folder)"
    if b.startswith("."):
        return "a hidden file (its name starts with '.')"
    if first[b] != m:
        return (f"the same file name as {first[b]}, read in its place (the archive's folders are not kept); send it "
                "in an archive of its own")
    if b in taken or b.lower() in named or (ext == ".hea" and stem in named) or (ext in WFDB_DATA and stem in stems):
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
