"""Known published weights: where they live, their hash, labels and preprocessing contract,
and a verified download through huggingface_hub.

A weights file is SHA-256 checked each time it is loaded by name; :func:`sha256_cached` remembers
a checked file's digest in the package's cache (``cache_dir("hashes")``, one small JSON file per
file) under the file's identity: its resolved path, size, modification and change times (ns) and
inode.  An unchanged file is not read again (hashing the 1-lead file took ~1 s a load); a file
that changed in any of these is hashed again.  A digest is remembered only once the file's
modification time is 2 s older than the hashing (a file still being written, or rewritten within
a coarse file system's timestamp step, is never remembered as another content's).  Other digests
of a file's content (the check of a saved model's tensors) are remembered the same way, by
:func:`digest_cached`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import SetupError, WeightsDownloadError

if TYPE_CHECKING:
    from .description import ModelDescription

__all__ = ["KnownWeights", "KNOWN_WEIGHTS", "resolve_known", "download_weights", "download_all", "sha256_file",
           "sha256_cached", "digest_cached", "file_identity", "cached_weights", "check_advertised"]

HUB_REPO = "PKUDigitalHealth/ECGFounder"


@dataclass(frozen=True)
class KnownWeights:
    """A published checkpoint.

    Attributes:
        name: short name used on the command line (``"12-lead"``).
        repo_id, filename, revision: location on the Hugging Face Hub.
        sha256: expected SHA-256 of the file, or ``None`` where no hash is known.
        n_leads: input leads (12 → I…V6, 1 → lead I).
        size_mb: approximate download size.
    """

    name: str
    repo_id: str
    filename: str
    revision: str | None
    sha256: str | None
    n_leads: int
    size_mb: int = 353
    licence: str = "MIT"

    @property
    def description(self) -> "ModelDescription":
        """What these weights are and need, known before the download: the 150 ECGFounder labels,
        the published preprocessing over ``n_leads`` leads, multi-label task, Hub location and
        expected SHA-256."""
        from ..labels import load_labels
        from .description import ModelDescription, default_contract

        return ModelDescription(
            labels=load_labels(), contract=default_contract(self.n_leads), task_meta={"task": "multilabel"},
            source={"name": self.name, "repo_id": self.repo_id, "filename": self.filename, "revision": self.revision,
                    "licence": self.licence},
            sha256=self.sha256, name=self.name, revision=self.revision,
        )

    @property
    def url(self) -> str:
        rev = self.revision or "main"
        return f"https://huggingface.co/{self.repo_id}/resolve/{rev}/{self.filename}"


KNOWN_WEIGHTS: dict[str, KnownWeights] = {
    "12-lead": KnownWeights(
        name="12-lead",
        repo_id=HUB_REPO,
        filename="12_lead_ECGFounder.pth",
        # Hash and revision as recorded by a third party (see the reference notes); the pinned
        # revision guarantees the hash refers to the same file.
        revision="d9b1793951b2342f5f7e84f1ac03cd37f8a08724",
        sha256="ee199f3781f4ae1f732973267f003da0a759ea12bddb0dd28a77faa60aca7997",
        n_leads=12,
    ),
    "1-lead": KnownWeights(
        name="1-lead",
        repo_id=HUB_REPO,
        filename="1_lead_ECGFounder.pth",
        revision=None,
        sha256=None,  # no published hash; the file is loaded safely and strictly all the same
        n_leads=1,
    ),
}

_ALIASES = {"12": "12-lead", "12lead": "12-lead", "12_lead": "12-lead", "1": "1-lead", "1lead": "1-lead",
            "1_lead": "1-lead", "single-lead": "1-lead", "single": "1-lead"}


def resolve_known(name: str) -> KnownWeights | None:
    """The :class:`KnownWeights` for a name such as ``"12-lead"`` (aliases accepted), else ``None``."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    return KNOWN_WEIGHTS.get(key)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_identity(st: os.stat_result) -> dict[str, int]:
    """A file's identity as the digest caches know it (a change to any of these: read it again)."""
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}


def sha256_cached(path: str | os.PathLike, expected: str | None = None) -> str:
    """SHA-256 of a file, remembered in the package's cache under the file's identity (see the
    module documentation), so that an unchanged file is hashed once.  With ``expected``, only a
    digest equal to it is taken from, or put into, the cache: a file that does not match is
    always hashed anew (a mismatch is never answered from the cache).  A cache that cannot be
    read or written only costs the hashing."""
    return digest_cached(path, lambda p: sha256_file(p), expected=expected)


def digest_cached(path: str | os.PathLike, compute: Callable[[Path], str], *, kind: str = "sha256",
                  expected: str | None = None, before: tuple[os.stat_result, int] | None = None) -> str:
    """A digest ``compute(path)`` of a file's content, remembered under the file's identity (the
    rules of :func:`sha256_cached`, which is this with ``kind="sha256"``); ``kind`` names the digest
    (one cache entry per file and kind).  ``before``: ``(os.stat(path), time.time_ns())`` taken before
    the content that ``compute`` digests was read, where the caller read it already (``compute``
    digests what it holds): the digest is looked up and remembered under the identity the file had
    before that read, only while it still has it, and remembered only when settled 2 s before it."""
    from .._fileio import cache_dir, write_json

    p = Path(path).resolve()
    key = str(p) if kind == "sha256" else f"{p}\0{kind}"
    entry = cache_dir("hashes", hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32] + ".json")
    st, began = before if before is not None else (p.stat(), 0)
    try:
        known = json.loads(entry.read_text(encoding="utf-8"))
        if (known.get("path") == str(p) and known.get("identity") == file_identity(st)
                and (before is None or file_identity(p.stat()) == file_identity(st))
                and (expected is None or known.get(kind) == expected)):
            return str(known[kind])
    except (OSError, ValueError, AttributeError, KeyError):  # none yet, or not one of ours: compute
        pass
    began = began or time.time_ns()
    digest = compute(p)
    try:
        after = p.stat()
        if (expected is None or digest == expected) and file_identity(after) == file_identity(st) \
                and st.st_mtime_ns < began - 2_000_000_000:  # (settled: not written during or just before the hashing)
            write_json(entry, {"path": str(p), "identity": file_identity(st), kind: digest})
    except OSError:
        pass
    return digest


def check_advertised(path: str | os.PathLike, what: str, again: str) -> None:
    """Check a file of the Hugging Face cache against the SHA-256 the Hub advertised for it: the
    cache names the blob by its ETag, which for a large (LFS) file is the SHA-256 of its content (a
    small file's is a git id, not checked).  A mismatch (a damaged transfer) removes the file and
    raises :class:`WeightsDownloadError`; ``again`` says how to fetch it anew."""
    import re

    blob = Path(path).resolve()
    if not re.fullmatch(r"[0-9a-f]{64}", blob.name):
        return
    digest = sha256_cached(blob, expected=blob.name)
    if digest != blob.name:
        for f in (blob, Path(path)):
            try:
                f.unlink(missing_ok=True)
            except OSError:
                pass
        raise WeightsDownloadError(f"downloaded {what} is corrupt: SHA-256 {digest} != {blob.name}, the SHA-256 the Hub "
                                   f"advertised for it. The file was removed; {again}")


def _offline_message(w: KnownWeights, reason: str) -> str:
    return (
        f"could not download the {w.name} ECGFounder weights ({reason}). "
        f"Download {w.filename} (~{w.size_mb} MB) from {w.url} on a machine with network access, "
        f"put it anywhere here (e.g. ./{w.filename}) and load it from there: load_model('./{w.filename}'), or "
        f"model='./{w.filename}' (CLI: --checkpoint ./{w.filename}). Alternatively set HF_HOME to a Hugging Face "
        "cache that already holds it."
    )


def _unknown_message(name: str) -> str:
    return (f"unknown weights {name!r}; known: {', '.join(sorted(KNOWN_WEIGHTS))} (a local checkpoint needs no "
            "download: load it with load_model(path), or model=path (CLI: --checkpoint FILE)).")


_CACHE_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _cache_message(w: KnownWeights, cache_dir: str | os.PathLike | None, exc: OSError) -> str:
    from huggingface_hub import constants

    where = str(cache_dir or constants.HF_HUB_CACHE)
    return (
        f"could not write the {w.name} ECGFounder weights into the cache {where} "
        f"({exc.strerror or type(exc).__name__}; ~{w.size_mb} MB are needed). Free space there or make it "
        "writable, or set HF_HOME to a writable folder with room (and keep it set when the weights are used)."
    )


def _hub_resolvable() -> bool:
    """Whether the Hub's host name resolves.  Without DNS (an offline machine) huggingface_hub
    would retry for about 30 s before giving up; answering from the local cache at once is the
    same outcome without the wait."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname
    if not host:
        return True
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return True


def cached_weights(name: str, *, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Where the Hugging Face cache holds the published weights ``name`` (``None``: not there),
    looked up without the network (the file is SHA-256 checked when it is used)."""
    w = resolve_known(name)
    if w is None:
        raise SetupError(_unknown_message(name), "name")
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(w.repo_id, w.filename, cache_dir=cache_dir, revision=w.revision)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def download_weights(name: str, *, cache_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Fetch published weights into the standard Hugging Face cache and verify their SHA-256.

    Honours ``HF_ENDPOINT`` (a mirror), ``HF_HOME``/``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE``.
    A file whose hash does not match is deleted and reported; nothing unverified is loaded.
    """
    w = resolve_known(name)
    if w is None:
        raise SetupError(_unknown_message(name), "name")
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise WeightsDownloadError(_offline_message(w, f"huggingface_hub is not installed: {exc}")) from None
    try:
        path = Path(
            hf_hub_download(
                repo_id=w.repo_id,
                filename=w.filename,
                revision=w.revision,
                cache_dir=cache_dir,
                force_download=force,
                local_files_only=not _hub_resolvable(),
            )
        )
    except LocalEntryNotFoundError:
        from huggingface_hub import constants

        why = ("HF_HUB_OFFLINE is set (unset it to download) and the file is not in the local cache"
               if constants.HF_HUB_OFFLINE else "the Hub could not be reached and the file is not in the local cache")
        raise WeightsDownloadError(_offline_message(w, why)) from None
    except (EntryNotFoundError, RepositoryNotFoundError) as exc:
        raise WeightsDownloadError(_offline_message(w, f"the Hub answered {type(exc).__name__}")) from None
    except OSError as exc:  # connection errors are OSErrors (requests/httpx) in huggingface_hub
        if exc.errno in _CACHE_ERRNOS:  # the cache cannot be written: the network is not the problem
            raise WeightsDownloadError(_cache_message(w, cache_dir, exc)) from None
        raise WeightsDownloadError(_offline_message(w, " ".join(str(exc).split())[:200])) from None
    except Exception as exc:  # any other hub/http failure: same actionable message
        raise WeightsDownloadError(_offline_message(w, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")) from None
    if w.sha256 is None:  # (no published hash: the Hub's own, as it advertised it)
        check_advertised(path, w.filename, "run the command again to re-download it, or download it by hand from "
                         f"{w.url} and load it from there: load_model(FILE), or model=FILE (CLI: --checkpoint FILE).")
    else:
        digest = sha256_cached(path, expected=w.sha256)
        if digest != w.sha256:
            bad = path.resolve()
            try:
                bad.unlink()
                path.unlink(missing_ok=True)
            except OSError:
                pass
            raise WeightsDownloadError(
                f"downloaded {w.filename} is corrupt: SHA-256 {digest} != expected {w.sha256}. "
                "The file was removed; run the command again to re-download, or download it by hand "
                f"from {w.url} and load it from there: load_model(FILE), or model=FILE (CLI: --checkpoint FILE)."
            )
    return path


def download_all(names, *, cache_dir: str | os.PathLike | None = None,
                 force: bool = False) -> list[tuple[str, Path | None, str | None]]:
    """:func:`download_weights` for each of ``names``; one failure does not stop the others.
    Returns ``(name, path, None)`` for each success and ``(name, None, one-line reason)`` for each
    failure, in order."""
    out: list[tuple[str, Path | None, str | None]] = []
    for name in names:
        try:
            out.append((name, download_weights(name, cache_dir=cache_dir, force=force), None))
        except (ValueError, OSError) as exc:  # unknown name, network, corrupt file
            out.append((name, None, " ".join(str(exc).split())))
    return out
