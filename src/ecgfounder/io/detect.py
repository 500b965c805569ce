"""Format registry and detection (by extension, then by content), and the generic read API."""

from __future__ import annotations

import importlib
import os
import re
import stat
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..errors import RecordReadError, SetupError, one_line
from ..recording import Recording
from ._common import as_shown, collect_notes, note, read_error
from .archives import ERRORS, ArchiveReaders, archive_items
from .compressed import COMPRESSIONS, compression_of, is_numpy_zip
from .policy import finish

__all__ = ["FORMATS", "ALIASES", "EXTENSIONS", "detect_format", "read", "iter_read", "find_records"]

# format name -> "module:function" returning a Recording (lazy, so optional dependencies load on use)
FORMATS: dict[str, str] = {
    "wfdb": "ecgfounder.io.wfdb:read_wfdb",
    "edf": "ecgfounder.io.edf:read_edf",
    "muse": "ecgfounder.io.muse:read_muse",
    "hl7_aecg": "ecgfounder.io.hl7:read_hl7_aecg",
    "dicom": "ecgfounder.io.dicom:read_dicom",
    "sierra": "ecgfounder.io.sierra:read_sierra",
    "scp": "ecgfounder.io.scp:read_scp",
    "scp_healforce": "ecgfounder.io.scp_healforce:read_scp_healforce",
    "cardiosoft": "ecgfounder.io.cardiosoft:read_cardiosoft",
    "ishne": "ecgfounder.io.ishne:read_ishne",
    "npy": "ecgfounder.io.arrays:read_npy",
    "npz": "ecgfounder.io.arrays:read_npz",
    "csv": "ecgfounder.io.arrays:read_csv",
    "hdf5": "ecgfounder.io.hdf5:read_hdf5",
    "matlab": "ecgfounder.io.matlab:read_matlab",
    "opensignals": "ecgfounder.io.opensignals:read_opensignals",
}

# formats whose files may hold many recordings -> "module:function" yielding them
_ITERATORS: dict[str, str] = {
    "npy": "ecgfounder.io.arrays:iter_npy",
    "npz": "ecgfounder.io.arrays:iter_npz",
    "hdf5": "ecgfounder.io.hdf5:iter_hdf5",
    "matlab": "ecgfounder.io.matlab:iter_matlab",
}

ALIASES: dict[str, str] = {
    "hl7": "hl7_aecg", "aecg": "hl7_aecg", "bdf": "edf", "edf+": "edf", "tsv": "csv", "txt": "csv",
    "h5": "hdf5", "hdf": "hdf5", "philips": "sierra", "sierra_xml": "sierra", "ge": "muse",
    "muse_xml": "muse", "cardiologyxml": "cardiosoft", "ukbiobank": "cardiosoft", "holter": "ishne",
    "dcm": "dicom", "scp-ecg": "scp", "scp_ecg": "scp", "numpy": "npy", "healforce": "scp_healforce", "mat": "matlab",
}

# extension -> format name (XML is resolved by content)
EXTENSIONS: dict[str, str] = {
    ".hea": "wfdb",
    ".edf": "edf", ".bdf": "edf", ".rec": "edf",
    ".dcm": "dicom", ".dicom": "dicom",
    ".scp": "scp",
    ".ecg": "ishne", ".ishne": "ishne",
    ".npy": "npy", ".npz": "npz", ".mat": "matlab",  # (a .mat beside a .hea is WFDB's)
    ".csv": "csv", ".tsv": "csv",
    ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5",
    ".xml": "xml",
}

_XML_ROOTS = {"restingecg": "muse", "annotatedecg": "hl7_aecg", "restingecgdata": "sierra",
              "cardiologyxml": "cardiosoft"}


def _head(p: Path, n: int = 4096) -> bytes:
    try:
        if not stat.S_ISREG(os.stat(p).st_mode) and not p.is_dir():  # opening a named pipe waits for ever
            raise RecordReadError(p, "not a regular file (a named pipe, socket or device); give ECG record files")
        with open(p, "rb") as fh:
            return fh.read(n)
    except FileNotFoundError:
        raise RecordReadError(p, "file not found") from None
    except IsADirectoryError:
        raise RecordReadError(p, "is a directory, not a record file") from None
    except OSError as exc:
        raise RecordReadError(p, f"cannot open: {exc.strerror or exc}") from None


def _xml_kind(p: Path, head: bytes) -> str | None:
    """The ECG XML dialect from the root element name in the first bytes, or ``None``."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text = head.decode("utf-16", errors="ignore")
    elif head[:4] in (b"<\x00?\x00", b"<\x00<\x00"):
        text = head.decode("utf-16-le", errors="ignore")
    elif head[:4] == b"\x00<\x00?":
        text = head.decode("utf-16-be", errors="ignore")
    else:
        text = head.decode("latin-1")
    text = re.sub(r"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", "", text, flags=re.S)
    m = re.search(r"<\s*(?:[\w.-]+:)?([A-Za-z_][\w.-]*)", text)
    if not m:
        return None
    return _XML_ROOTS.get(m.group(1).lower())


def _healforce(p: Path, head: bytes) -> bool:
    """Whether ``p`` has the layout of Healforce's non-conformant SCP-ECG variant."""
    try:
        size = os.stat(p).st_size
    except OSError:
        return False
    return _load("ecgfounder.io.scp_healforce:looks_like_healforce")(head, size)


def _sniff(p: Path, head: bytes) -> str | None:
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    if head[:7] == b"MATLAB " and b"MAT-file" in head[:116]:  # (levels 5 and 7.3; 7.3 is HDF5 after this header)
        return "matlab"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    if head[:4] == b"PK\x03\x04" and is_numpy_zip(p):  # (another zip is an archive of ECG files: _archive_of)
        return "npz"
    if head[:1] == b"\xff" and head[1:8] == b"BIOSEMI":
        return "edf"
    if len(head) >= 256 and head[:8] == b"0       " and head[252:256].strip().isdigit():
        return "edf"
    stripped = head.lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n")
    if stripped[:1] == b"<":
        return _xml_kind(p, head)
    if len(head) >= 22 and head[16:22] == b"SCPECG":
        return "scp"
    if _healforce(p, head):
        return "scp_healforce"
    if head[:8] == b"ISHNE1.0":
        return "ishne"
    if head.startswith(b"# OpenSignals Text File Format"):  # (a .txt export of PLUX's OpenSignals)
        return "opensignals"
    return None


def canonical_format(fmt: str) -> str:
    """``'HL7'`` → ``'hl7_aecg'``; raises :class:`~ecgfounder.errors.SetupError` (a ``ValueError``)
    naming the valid choices."""
    f = str(fmt).strip().lower()
    f = ALIASES.get(f, f)
    if f not in FORMATS:
        raise SetupError(f"unknown format {fmt!r}; choose one of {', '.join(sorted(FORMATS))} "
                         "(or give none: each file's format is detected).", "format")
    return f


def detect_format(path: str | os.PathLike) -> str:
    """Name of the format of ``path`` (a key of :data:`FORMATS`), from extension and first bytes."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".hea" or ((ext in (".dat", ".mat") or not p.suffix) and p.with_suffix(".hea").exists()):
        return "wfdb"
    if p.is_dir():
        raise RecordReadError(p, "is a directory, not a record file")
    head = _head(p)
    if not head:
        raise RecordReadError(p, "file is empty (0 bytes)")
    fmt = EXTENSIONS.get(ext)
    if fmt == "xml":
        kind = _xml_kind(p, head)
        if kind is None:
            if not head.lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n").startswith(b"<"):
                raise RecordReadError(p, "file has an .xml extension but does not start with XML")
            raise RecordReadError(
                p, "XML file is not a known ECG dialect ("
                + ", ".join(f"<{root}> ({fmt})" for root, fmt in _XML_ROOTS.items())
                + "); pass format=... (CLI: --format) to force one"
            )
        return kind
    if fmt is not None:
        return "scp_healforce" if fmt == "scp" and _healforce(p, head) else fmt
    if sniffed := _sniff(p, head):
        return sniffed
    raise RecordReadError(
        p, f"unknown ECG file type {ext or '(no extension)'!r}; known formats: {', '.join(sorted(FORMATS))}. "
        "Pass format=... (CLI: --format) to force one.",
    )


def _load(spec: str) -> Callable:
    mod, func = spec.split(":")
    return getattr(importlib.import_module(mod), func)


def _policy_kwargs(kwargs: dict) -> dict:
    return {"trim_calibration": bool(kwargs.get("trim_calibration", True)),
            "max_duration": kwargs.get("max_duration")}


def _finished(p: Path, fmt: str, make: Callable[[], Iterator[Recording]], kwargs: dict) -> Iterator[Recording]:
    """Recordings from ``make()`` with the reading policy applied; any failure is one
    :class:`RecordReadError` naming ``p``."""
    pol = _policy_kwargs(kwargs)
    seen: set = set()
    try:
        it = make()
        while True:
            with collect_notes() as notes:
                try:
                    rec = next(it)
                except StopIteration:
                    return
                if fmt not in _TAKES_LAYOUT:
                    _note_unused_layout(p, fmt, rec, kwargs)
                rec = finish(p, rec, notes, seen=seen, fs_given=fmt in _TAKES_LAYOUT, **pol)
            yield rec
    except GeneratorExit:
        raise
    except Exception as exc:  # every failure becomes one line naming the file
        raise read_error(p, fmt, exc) from (None if isinstance(exc, RecordReadError) else exc)


# formats whose files may lack their rate and lead names, read with fs=/leads=/units= (the others store them)
_TAKES_LAYOUT = ("npy", "npz", "csv", "hdf5", "matlab")


def _note_unused_layout(p: Path, fmt: str, rec: Recording, kwargs: dict) -> None:
    """A rate, lead names or units given for a file that stores its own, and differ from them: said (a
    mixed folder needs them for its CSV files only, so not refused), the file's own being used."""
    from ..signal.leads import canonical_lead

    said = []
    fs = kwargs.get("fs")
    if fs is not None and abs(float(fs) - float(rec.fs)) > 1e-6 * float(rec.fs):
        said.append(f"fs={float(fs):g} (it stores {float(rec.fs):g} Hz)")
    leads = kwargs.get("leads")
    if leads is not None and [canonical_lead(x) for x in leads] != [canonical_lead(x) for x in rec.leads]:
        said.append(f"leads={','.join(map(str, leads))} (it stores {','.join(rec.leads)})")
    units = kwargs.get("units")
    if units is not None:
        from ._common import unit_scale_to_mv

        stored = rec.meta.get("original_units") or ()
        stored = tuple(dict.fromkeys((stored,) if isinstance(stored, str) else stored))
        if not stored or any(unit_scale_to_mv(u) != unit_scale_to_mv(units) for u in stored):
            said.append(f"units={units} (it stores {', '.join(stored) or 'its own'})")
    if said:
        note("unused_options", tuple(said), f"{p}: {' and '.join(said)} not used: a {fmt} file stores its own rate, "
             "lead names and units, and they are what is read (the options are for CSV/NumPy/HDF5 files)")


def _archive_of(p: Path, format: str | None) -> str | None:
    """The compression of ``p``: its extension's, or for a file of no known extension (and no
    format given) a zip archive's first bytes (an export named by its vendor, ``x.ecgz``)."""
    kind = compression_of(p)
    if kind or format or p.suffix.lower() in EXTENSIONS or p.with_suffix(".hea").exists():
        return kind
    return compression_of(p, sniff=True)


def read(path: str | os.PathLike, format: str | None = None, **kwargs) -> Recording:
    """Read one ECG file into a :class:`Recording` (signal in mV, leads × samples).

    Args:
        path: the file (a WFDB record by its ``.hea``, ``.dat``/``.mat`` or base name); ``.gz``,
            ``.zst``, ``.bz2``, ``.xz`` copies and ``.zip`` archives of ECG files are read as well.
        format: force a format (a key of :data:`FORMATS` or an alias); detected when ``None``.
        **kwargs: format options, e.g. ``fs=``/``leads=``/``units=`` for arrays and CSV,
            ``dataset=`` for HDF5, ``index=`` to pick one item of a batch file, ``waveform="median"``
            (MUSE), ``series="representative"`` (HL7), ``group="MEDIAN BEAT"`` (DICOM); and for
            every format ``max_duration=`` (seconds: read only the first part of a long record) and
            ``trim_calibration=False`` (keep a trailing calibration pulse).

    Raises :class:`RecordReadError` (a ``ValueError``) with a one-line reason naming the file for
    anything that is not a readable ECG: missing, empty, truncated or corrupt files, bad headers,
    unsafe XML, absurd sizes or rates (see :mod:`ecgfounder.io.limits`).  For files holding many
    recordings use :func:`iter_read` (or ``index=``).
    """
    p = Path(path)
    index = kwargs.pop("index", None)
    kind = _archive_of(p, format)
    if kind:  # ``index`` counts the archive's members that could not be read as well
        recs = archive_items(p, format, kwargs, _READERS, kind=kind, errors="raise" if index is None else "yield")
        try:
            if index is not None:
                for k, rec in enumerate(recs):
                    if k == int(index):
                        if isinstance(rec, RecordReadError):
                            raise rec
                        return rec
                raise RecordReadError(p, f"no recording {index} in the file")
            first = next(recs, None)
            if first is None:
                raise RecordReadError(p, "no recordings in the file")
            if next(recs, None) is not None:
                raise RecordReadError(p, "archive holds several recordings; use ecgfounder.io.iter_read() "
                                      "(the CLI reads every one)")
            return first
        finally:
            recs.close()
    fmt = canonical_format(format) if format else detect_format(p)
    if index is not None and fmt not in _ITERATORS:
        raise SetupError(f"{p}: index={index} picks a recording of a batch file ({', '.join(_ITERATORS)}); this is "
                         f"a {fmt} file of one: leave index out.", "index")

    def make() -> Iterator[Recording]:
        if index is not None:
            k = int(index)
            if k >= 0:  # (that item alone is read)
                yield from _load(_ITERATORS[fmt])(p, **kwargs, start=k, stop=k + 1)
            n = count_records(p, fmt, **kwargs)  # (from the header of the batch files that can tell)
            raise RecordReadError(p, f"no recording {index} in the file" + (f" (it holds {n}: 0 to {n - 1})" if n else ""))
        yield _load(FORMATS[fmt])(p, **kwargs)

    gen = _finished(p, fmt, make, kwargs)
    try:
        return next(gen)
    finally:
        gen.close()


_COUNTERS: dict[str, str] = {"npy": "ecgfounder.io.arrays:count_npy", "hdf5": "ecgfounder.io.hdf5:count_hdf5"}


def count_records(path: str | os.PathLike, format: str | None = None, **kwargs) -> int | None:
    """How many recordings ``path`` holds, from its header alone, for the batch files that can tell
    (``.npy`` and HDF5, whose items :func:`iter_read` reads one at a time with ``start=``/``stop=``);
    ``None`` for other files, which are not opened (without ``format``, only a file named as one of
    those formats is).  Raises :class:`RecordReadError` for a file that cannot be opened."""
    p = Path(path)
    if compression_of(p) or (not format and EXTENSIONS.get(p.suffix.lower()) not in _COUNTERS):
        return None
    fmt = canonical_format(format) if format else detect_format(p)
    if fmt not in _COUNTERS:
        return None
    try:
        return int(_load(_COUNTERS[fmt])(p, **kwargs))
    except Exception as exc:  # (a RecordReadError as it is; another named as one of this file)
        raise (exc if isinstance(exc, RecordReadError) else read_error(p, fmt, exc)) from None


def iter_read(path: str | os.PathLike, format: str | None = None, *, errors: str = "raise",
              **kwargs) -> Iterator[Recording]:
    """Every recording in ``path``: one for most formats, many for batch files (``.npy``/``.npz``
    of shape ``(n, ...)``, HDF5 datasets such as CODE-15's ``(n, 4096, 12)``, zip archives), read
    lazily; for batch files ``start=``/``stop=`` read only the items ``start`` to ``stop - 1``.

    An archive's unreadable files cost none of the others.  ``errors="raise"`` (default): every
    readable one is yielded, then one :class:`RecordReadError` names each that could not be read.
    ``errors="yield"``: each file that cannot be read is yielded in its place as its
    :class:`RecordReadError` (its ``member`` the file's name in the archive), and so is the error
    of a file that fails as a whole or after some of its recordings; nothing is raised for a file."""
    if errors not in ERRORS:
        raise SetupError(f"errors={errors!r} is not one of {ERRORS}; 'raise' stops at a file that cannot be read, "
                         "'yield' gives its error in its place.", "errors")
    p = Path(path)
    kind = _archive_of(p, format)
    if kind:
        yield from archive_items(p, format, kwargs, _READERS, kind=kind, errors=errors)
        return
    try:
        fmt = canonical_format(format) if format else detect_format(p)
        if fmt not in _ITERATORS:
            yield read(p, format=fmt, **kwargs)
            return
        yield from _finished(p, fmt, lambda: _load(_ITERATORS[fmt])(p, **kwargs), kwargs)
    except RecordReadError as exc:
        if errors != "yield":
            raise
        yield exc


_CSV_HINT = re.compile(r"^\s*#|(^|[,;\t]\s*\"?)(i|ii|v1|lead|ecg|time|mlii)\b", re.I)
_SNIFFED = ("xml", "csv")  # formats whose files are taken for recordings by their content


def _is_record_file(p: Path) -> bool:
    ext = p.suffix.lower()
    if ext in COMPRESSIONS:
        if ext == ".zip":
            return True
        return Path(p.name[: -len(p.suffix)]).suffix.lower() in EXTENSIONS  # x.hea.gz, x.xml.zst, ...
    if ext == ".dat" or (ext == ".mat" and p.with_suffix(".hea").exists()):
        return False  # part of a WFDB record, represented by its .hea
    fmt = EXTENSIONS.get(ext)
    if fmt is None:  # (an OpenSignals export is a .txt known by its first line)
        return ext == ".txt" and _load("ecgfounder.io.opensignals:is_opensignals")(p)
    if fmt == "xml":
        try:
            return _xml_kind(p, _head(p, 2048)) is not None
        except RecordReadError:
            return False
    if fmt == "csv":
        # a table of labels (e.g. a database index) is not a recording: require lead-like columns
        try:
            first = _head(p, 1024).decode("utf-8", errors="ignore").splitlines()[:1]
        except RecordReadError:
            return False
        return bool(first) and bool(_CSV_HINT.search(first[0]))
    return True


def find_records(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and directories (recursively) into record files, sorted, without duplicates.

    A WFDB record is represented by its ``.hea`` file.  Directories yield every file of a known
    format (XML only when its root element is an ECG dialect, CSV/TSV only with lead-like column
    names; the XML and CSV files passed over are named in one warning per directory).  A path given
    explicitly is kept as is, even if it does not exist, so the caller reports it as a failed record
    instead of losing it silently.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found, passed = [], []
            for q, key in _files_below(p):
                if _is_record_file(q):
                    found.append((q, key))
                elif EXTENSIONS.get(q.suffix.lower()) in _SNIFFED:
                    passed.append((q, key))
            found = _without_segments(found)
            if passed:  # (an ECG export of an unknown XML dialect or CSV layout must not vanish unsaid)
                names = one_line(", ".join(str(q.relative_to(p)) for q, _ in passed[:5])) + (" ..." if len(passed) > 5 else "")
                warnings.warn(as_shown(f"{p}: ") + f"{len(passed)} XML/CSV file(s) passed over, not taken for ECG "
                              "recordings (an XML of no known ECG dialect, a CSV without lead-like column names): "
                              f"{names}; give a file by name to read it as one (its error then says why it cannot "
                              "be).", stacklevel=2)
        else:
            if p.suffix.lower() in (".dat", ".mat") and p.with_suffix(".hea").exists():
                p = p.with_suffix(".hea")
            found = [(p, p.resolve() if p.exists() else p)]
        for q, key in found:
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out


_MULTI = re.compile(rb"^\s*[^\s/#]+/\d+\s")  # a multi-segment record line: "name/segments ..."


def _without_segments(found: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """``found`` less the segment headers of the WFDB multi-segment records in it (each read as part
    of its record, through the record's own header; a layout segment holds no samples)."""
    segments: set[Path] = set()
    for q, key in found:
        if q.suffix.lower() != ".hea":
            continue
        try:
            with open(key, "rb") as fh:
                head = fh.read(512)
                first = next((ln for ln in head.splitlines() if ln.strip() and not ln.lstrip().startswith(b"#")), b"")
                if not _MULTI.match(first):
                    continue
                head += fh.read(1 << 20)  # (a record of thousands of segments; longer headers are refused when read)
        except OSError:
            continue
        lines = [ln for ln in head.splitlines() if ln.strip() and not ln.lstrip().startswith(b"#")]
        for ln in lines[1:]:  # a name with a path (a hostile '../x') is no segment beside it: its record fails alone
            name = ln.split()[0].decode(errors="replace") if ln.split() else "~"
            if name != "~" and not set(name) & set("/\\\0") and name not in (".", ".."):
                segments.add(key.with_name(name + ".hea"))
    return [(q, key) for q, key in found if key not in segments] if segments else found


def _files_below(root: Path) -> list[tuple[Path, Path]]:
    """``(path, resolved path)`` of every file below ``root``, in ``sorted(root.rglob("*"))`` order:
    directories are entered recursively but not through symbolic links (as ``rglob``), a link to a
    file counts, unreadable folders are passed over.  One ``os.scandir`` per folder and one
    ``realpath`` per folder (and per linked file) instead of several ``stat`` calls per file: 2,000
    records in a folder of 4,000 files took 89-91 ms through ``rglob``/``is_file``/``resolve``
    (45 us a record: 45 s before the first prediction for a million), and take 28-29 ms here."""
    found: list[tuple[tuple[str, ...], Path]] = []  # (parts below root, resolved path)
    stack: list[tuple[tuple[str, ...], str]] = [((), str(root))]
    while stack:
        parts, folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:  # (rglob passes over an unreadable folder)
            continue
        real = None
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(((*parts, e.name), e.path))
                elif e.is_file():  # (a link is followed here: a link to a file is a file)
                    if e.is_symlink():
                        key = Path(os.path.realpath(e.path))
                    else:
                        real = real or os.path.realpath(folder)
                        key = Path(real, e.name)
                    found.append(((*parts, e.name), key))
            except OSError:
                continue
    found.sort(key=lambda f: f[0])
    return [(root.joinpath(*parts), key) for parts, key in found]


_READERS = ArchiveReaders(read=iter_read, find=find_records, kind_of=_archive_of)
