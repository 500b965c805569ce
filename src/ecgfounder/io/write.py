"""Writers for interchange: WFDB, NumPy ``.npz`` and EDF+/BDF+."""

from __future__ import annotations

import json
import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._fileio import partial_path, publish, to_jsonable
from .._formats import WRITE_FORMATS
from ..errors import SetupError
from ..recording import Recording

__all__ = ["write", "written_files", "WRITE_FORMATS"]


def write_npz(rec: Recording, path: str | Path) -> Path:
    """Write ``signal`` (float64 mV, leads × samples), ``fs``, ``leads``, ``units`` and the metadata
    as JSON (``meta_json``) into a compressed ``.npz`` (lossless)."""
    p = Path(path)
    meta = {k: to_jsonable(v) for k, v in rec.meta.items() if k not in ("source", "format")}
    with open(p, "wb") as fh:
        np.savez_compressed(
            fh, signal=np.asarray(rec.signal, dtype=np.float64), fs=np.float64(rec.fs),
            leads=np.array(rec.leads, dtype=str), units=np.array("mV"), meta_json=np.array(json.dumps(meta)),
        )
    return p


def _format_of(path: Path, format: str | None) -> str:
    by_suffix = {**{suffix: fmt for fmt, suffix in WRITE_FORMATS.items()}, ".dat": "wfdb"}
    fmt = (format or "").strip().lower() or by_suffix.get(path.suffix.lower(), "")
    if fmt not in WRITE_FORMATS:
        raise SetupError(
            f"cannot write format {format or path.suffix!r}; choose one of {', '.join(WRITE_FORMATS)} "
            "(or give a path ending in .hea, .npz, .edf, .bdf).", "format"
        )
    return fmt


def written_files(path: str | os.PathLike, format: str | None = None) -> list[Path]:
    """The files :func:`write` makes for ``path`` and ``format``: the ``.hea`` and ``.dat`` of a
    WFDB record, else the one file (its suffix the format's)."""
    p = Path(path)
    fmt = _format_of(p, format)
    if fmt == "wfdb":
        base = p.with_suffix("") if p.suffix.lower() in (".hea", ".dat") else p
        return [base.with_name(base.name + ".hea"), base.with_name(base.name + ".dat")]
    want = WRITE_FORMATS[fmt]
    return [p if p.suffix.lower() == want else p.with_suffix(want)]


def _as_recorded(rec: Recording, path: Path) -> Recording:
    """``rec`` less the leads derived on reading (``meta['derived_leads']``: reading the file again
    derives them again); refused when it holds no samples or one lead twice (read back: one lost)."""
    from ..signal.leads import canonical_lead

    keep = [k for k, name in enumerate(rec.leads) if name in rec.stored_leads]
    if len(keep) < len(rec.leads):
        meta = {k: v for k, v in rec.meta.items() if k != "derived_leads"}
        rec = Recording(rec.signal[keep], rec.fs, tuple(rec.leads[k] for k in keep), meta)
    if not rec.leads or not rec.n_samples:
        raise SetupError(f"{path}: the recording holds no samples (shape {rec.signal.shape}, leads × samples); "
                         "an ECG file needs at least one lead and one sample: give a recording that has them.",
                         "recording")
    seen: dict[str, str] = {}
    for name in rec.leads:
        key = canonical_lead(name)
        if key in seen:
            raise SetupError(f"{path}: leads {seen[key]!r} and {name!r} are one lead, which a reader keeps once; "
                             "rename or drop one (Recording leads=...).", "recording")
        seen[key] = name
    return rec


# catch_warnings changes process-wide state: two writes overlapping in threads would leave the
# process's warnings recorded into a finished write's list (never shown again)
_CATCHING = threading.Lock()


def _staged(target: Path, write_into: Callable[[Path], Any]) -> None:
    """Run ``write_into`` on ``target``'s name inside a private folder beside it, then move each
    file made into place (a WFDB header last, after the data it names): a failed write publishes
    nothing and leaves no file, and an existing file is replaced only by a whole one.  The writer's
    warnings and errors name ``target``, not the folder."""
    stage = partial_path(target, private=True)
    stage.mkdir()
    try:
        with _CATCHING, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            write_into(stage / target.name)
        for f in sorted(stage.iterdir(), key=lambda f: f.suffix.lower() == ".hea"):
            publish(f, target.parent / f.name)
    except SetupError as exc:
        raise SetupError(str(exc).replace(str(stage), str(target.parent)), exc.argument) from None
    except OSError as exc:  # (a full disk, a permission: named by the file asked for)
        raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    for w in caught:  # the writers' own notices as from write's caller; others (a library's) as they came
        text = str(w.message).replace(str(stage), str(target.parent))
        if issubclass(w.category, UserWarning):
            warnings.warn(text, w.category, stacklevel=3)
        else:
            warnings.warn_explicit(text, w.category, w.filename, w.lineno)


def write(recording: Recording, path: str | os.PathLike, format: str | None = None, **kwargs: Any) -> Path:
    """Write ``recording`` to ``path`` as ``format`` (``wfdb``, ``npz``, ``edf``, ``bdf``; guessed from
    the extension when ``None``).  Returns the path written (the ``.hea`` for WFDB).

    Written atomically: under a temporary name beside ``path``, then renamed, so a failed write
    leaves nothing and an existing file is replaced only by a whole one.  The leads derived on
    reading (``meta['derived_leads']``, III, aVR, aVL, aVF from I and II) are not written: the
    file holds the recorded leads, and reading it derives the others again.  A recording without
    samples, or with one lead twice, is refused.

    What survives (details and limits: :func:`.wfdb.write_wfdb`, :func:`.edf.write_edf`):

    * npz: everything (float64 samples, rate, leads, metadata as JSON).
    * WFDB: 16-bit samples over each lead's own min-max (step (max - min) / 65533 mV), NaN kept,
      the rate as given, lead names, patient and acquisition fields; the id is the file name.
    * EDF/BDF: 16/24-bit samples over each lead's min-max (step (max - min) / 65535 or / 16777215
      mV); no missing-sample code (NaN written as 0 mV), a rate that the 10-µs record duration
      cannot hold exactly is read back within 10 ppm; a warning says when data is changed.
    """
    p = Path(path)
    fmt = _format_of(p, format)
    target = written_files(p, fmt)[0]
    rec = _as_recorded(recording, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "wfdb":
        from .wfdb import write_wfdb

        _staged(target, lambda q: write_wfdb(rec, q, **kwargs))
    elif fmt == "npz":
        _staged(target, lambda q: write_npz(rec, q))
    else:
        from .edf import write_edf

        _staged(target, lambda q: write_edf(rec, q, bdf=fmt == "bdf"))
    return target
