"""Compressed inputs: ``.gz``, ``.zst``, ``.bz2``, ``.xz`` copies of ECG files and ``.zip`` archives of
them, as archives ship them.  Each is expanded into a private temporary folder, in bounded chunks,
never beyond :func:`~ecgfounder.io.limits.decompressed_limit` of the compressed size; zip member
paths keep their folders (:func:`member_path`: no path escapes the folder)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import unicodedata
import warnings
import zipfile
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import RecordReadError, one_line
from ._common import as_shown
from .limits import decompressed_limit

__all__ = ["COMPRESSIONS", "compression_of", "is_numpy_zip", "expanded", "member_path", "path_key"]

COMPRESSIONS: dict[str, str] = {".gz": "gzip", ".zst": "zstd", ".bz2": "bzip2", ".xz": "xz", ".zip": "zip"}
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_CHUNK = 1 << 20
_MAX_MEMBERS = 2000
_MAX_FOLDERS = 16  # a member's folder path at most this deep (2000 members 900 deep: 1.8 million folders made)
_SYMLINK = 0o120000
# WFDB signal files that travel beside a compressed header
_WFDB_PARTS = (".dat", ".mat")


def compression_of(path: Path, *, sniff: bool = False) -> str | None:
    """The compression of ``path`` by extension (``.zip`` included), else ``None``; with ``sniff``,
    a file whose first bytes are a zip archive's is ``"zip"`` whatever its name (an export under a
    vendor's own extension), unless it is NumPy's ``.npz`` (a zip of ``.npy`` arrays)."""
    kind = COMPRESSIONS.get(path.suffix.lower())
    if kind or not sniff or not path.is_file():  # (a named pipe would block the open)
        return kind
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                return None
    except OSError:
        return None
    return None if is_numpy_zip(path) else "zip"


def is_numpy_zip(path: Path) -> bool:
    """Whether the zip archive ``path`` holds ``.npy`` arrays and nothing else (NumPy's ``.npz``);
    ``False`` for one that cannot be opened as a zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return bool(names) and all(n.lower().endswith(".npy") for n in names)


def _opener(kind: str, fh: BinaryIO):
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=fh, mode="rb")
    if kind == "bzip2":
        import bz2

        return bz2.BZ2File(fh, mode="rb")
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(fh, mode="rb")
    if kind == "zstd":
        try:
            import zstandard
        except ImportError:
            raise RecordReadError(getattr(fh, "name", "?"), ".zst input needs the 'zstandard' package: "
                                  "pip install zstandard") from None
        return zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
    raise ValueError(kind)


def _copy_bounded(path: Path, src, dst: Path, budget: list[int], what: str) -> None:
    """Stream ``src`` into ``dst`` while the shared byte ``budget`` lasts."""
    with open(dst, "wb") as out:
        while True:
            try:
                chunk = src.read(_CHUNK)
            except RecordReadError:
                raise
            except Exception as exc:  # corrupt stream: zlib/lzma/bz2/zstd errors, EOFError
                msg = " ".join(str(exc).split())[:200] or type(exc).__name__
                raise RecordReadError(path, f"corrupt {what} data: {msg}") from None
            if not chunk:
                return
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise RecordReadError(
                    path, f"{what} data expand beyond {budget[1]} bytes (limit for a {budget[2]}-byte "
                    f"{'file' if budget[2] == path.stat().st_size else 'outer archive'}); refused as a decompression bomb "
                    "(if it is a genuine archive, extract it yourself and give the folder)"
                )
            out.write(chunk)


def _inner_name(path: Path) -> str:
    name = path.name[: -len(path.suffix)] if path.suffix else path.name
    return name or "record"


@contextlib.contextmanager
def expanded(path: Path, budget: list[int] | None = None, kind: str | None = None
             ) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """``(folder_or_file, compression, not_extracted)``: the decompressed copy of ``path`` (a file)
    or the extracted members of a ``.zip`` (a folder), removed on exit; ``not_extracted``: the
    members of a zip that could not be (encrypted, a method zipfile lacks, a name the disk refuses,
    corrupt data), by path, with why: each the failure of one file, not of the archive.

    ``budget`` (``[bytes left, limit, compressed size]``, filled here when empty) is shared with
    the archives found inside this one, so that nesting (a gzip of a gzip, zips in a zip) cannot
    renew the limit at every level: a 273-byte triple gzip expanded 200 MB before it was refused,
    and members multiplied the work.  ``kind``: the compression, when not the extension's (a zip
    archive found by its first bytes)."""
    kind = kind or compression_of(path)
    if kind is None:
        raise ValueError(f"{path} is not a compressed file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise RecordReadError(path, "file not found" if isinstance(exc, FileNotFoundError)
                              else f"cannot open: {exc.strerror or exc}") from None
    if size == 0:
        raise RecordReadError(path, "file is empty (0 bytes)")
    budget = [] if budget is None else budget
    if not budget:  # the outermost archive: its limit holds for everything expanded from it
        budget.extend([decompressed_limit(size), decompressed_limit(size), size])
    tmp = Path(tempfile.mkdtemp(prefix="ecgfounder-"))
    try:
        if kind == "zip":
            failed = _extract_zip(path, tmp, budget)
            yield tmp, kind, failed
            return
        with open(path, "rb") as fh:
            head = fh.read(6)
            real = next((k for m, k in _MAGIC.items() if head.startswith(m)), None)
            if real != kind:
                raise RecordReadError(path, f"has a {path.suffix} extension but is not {kind} data")
            fh.seek(0)
            inner = tmp / _inner_name(path)
            with _opener(kind, fh) as src:
                _copy_bounded(path, src, inner, budget, kind)
        if inner.suffix.lower() == ".hea":  # WFDB: bring the signal files, compressed or not
            for ext in _WFDB_PARTS:
                for cand in (path.parent / (inner.stem + ext), path.parent / (inner.stem + ext + path.suffix)):
                    if cand.exists() and cand.is_file():
                        if cand.suffix == path.suffix:
                            with open(cand, "rb") as fh, _opener(kind, fh) as src:
                                _copy_bounded(cand, src, tmp / (inner.stem + ext), budget, kind)
                        else:
                            shutil.copyfile(cand, tmp / cand.name)
                        break
        yield inner, kind, {}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _extract_zip(path: Path, dest: Path, budget: list[int]) -> dict[str, str]:
    """Extract the members of the zip ``path`` into ``dest`` (:func:`member_path`); returns those that
    could not be, with why.  An archive that cannot be opened, too many members or too many bytes
    (a bomb) fail it whole."""
    failed: dict[str, str] = {}
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise RecordReadError(path, f"not a readable zip archive: {exc}") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > _MAX_MEMBERS:
            raise RecordReadError(path, f"zip archive holds {len(infos)} files (limit {_MAX_MEMBERS}); extract it and "
                                  "give the folder, or split it into archives of fewer files")
        declared = sum(i.file_size for i in infos)
        if declared > budget[0]:
            raise RecordReadError(path, f"zip members declare {declared} bytes, above the limit of {budget[0]} "
                                  "for this archive (decompression bomb?); if it is a genuine archive, extract it "
                                  "yourself and give the folder")
        seen: set[str] = set()
        again: list[str] = []
        for info in infos:
            rel = member_path(info.filename)
            key = None if rel is None else path_key(rel)
            if key is not None and key in seen:
                again.append(info.filename)
            if key is None or key in seen:
                continue
            seen.add(key)
            if info.flag_bits & 0x1:
                failed[rel] = "encrypted (password-protected); extract it with its password and give the file itself"
                continue
            if (info.external_attr >> 16) & 0o170000 == _SYMLINK:  # (its data is the path it points to, not an ECG)
                failed[rel] = "a symbolic link, not followed; put the file it points to in the archive instead"
                continue
            if rel.count("/") > _MAX_FOLDERS:
                failed[rel] = f"in folders {rel.count('/')} deep (limit {_MAX_FOLDERS}); refused"
                continue
            try:
                with zf.open(info) as src:
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    _copy_bounded(path, src, dest / rel, budget, "zip")
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, ValueError, RecordReadError) as exc:
                if budget[0] < 0:  # the archive's byte budget is spent: a bomb, refused whole
                    raise
                why = exc.reason if isinstance(exc, RecordReadError) else (
                    "one of its folders has the path of a file of the archive"
                    if isinstance(exc, (FileExistsError, NotADirectoryError)) else
                    "the archive holds a folder of its path" if isinstance(exc, IsADirectoryError) else
                    exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())[:200])
                failed[rel] = f"cannot be extracted: {why.replace(str(dest), '')}"
                with contextlib.suppress(OSError):
                    (dest / rel).unlink()  # a part written before the failure is not read
    if again:
        warnings.warn(as_shown(f"{path}: ") + f"{len(again)} file(s) of the zip archive passed over, the same path as "
                      f"a file before them (names that differ only in letter case are one file here): {one_line(', '.join(again[:5]))}"
                      f"{' ...' if len(again) > 5 else ''}; give each in an archive of its own to read it", stacklevel=2)
    return failed


def path_key(rel: str) -> str:
    """What two members' paths share when they are one file on some disk: a.XML and a.xml (case), é
    composed and decomposed (Unicode normalisation); the second of them is not extracted."""
    return unicodedata.normalize("NFC", rel).lower()


def member_path(filename: str) -> str | None:
    """Where the zip member ``filename`` is extracted, relative to the archive's folder (POSIX): its
    folders kept (two exports named alike in two folders are two records), with no way out of
    that folder (``..``, roots and drive letters dropped); ``None`` for what is not read: macOS
    metadata (``__MACOSX/``), hidden files, a name of nothing but separators."""
    parts = [x for x in filename.replace("\\", "/").split("/") if x not in ("", ".", "..")]
    if parts and parts[0].endswith(":"):  # C:/...: a drive letter
        parts = parts[1:]
    if not parts or parts[0] == "__MACOSX" or parts[-1].startswith("."):
        return None
    return "/".join(parts)
