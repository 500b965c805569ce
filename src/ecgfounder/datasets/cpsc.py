"""CPSC 2021 (paroxysmal AF Holter excerpts) and CPSC 2019 (10-s single-lead QRS records).

* ``cpsc2021_manifest(root, task)``: consecutive 10-s windows of each record, ``patient_id``
  from the file name ``data_<patient>_<n>``.  Task ``af``: ``AF`` = 1 when at least half of the
  window lies inside an ``(AFIB`` or ``(AFL`` … ``(N`` episode of the ``.atr`` annotations.  Task
  ``hr``: ``heart_rate`` (beats/min) of the window from the ``.atr`` beat annotations (the QRS
  labels N, A, a, V, ...).  With ``stride_s`` windows also start every ``stride_s`` seconds in
  between; those extra rows carry ``train_only = 1`` and are kept for the training split only.
  Records whose annotations are missing, unreadable or contradict the header's class (``non
  atrial fibrillation`` with AF episodes, a ``persistent``/``paroxysmal`` record without any) are
  left out, all named in one warning.
* ``cpsc2019_manifest(root, out_dir)``: MATLAB ``data/data_NNNNN.mat`` + reference R peaks
  ``ref/R_NNNNN.mat``, converted once to WFDB under ``out_dir/records``; target ``heart_rate``
  (beats/min) = 60 · (number of R-R intervals) / (time from first to last R peak).  No patient
  ids are published; records whose reference R peaks are identical (the same 10 s, shipped more
  than once: 01234, 01235 and 01240 of the sample) share one group, every other record is its own.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DatasetError

__all__ = ["af_episodes", "beat_samples", "cpsc2021_manifest", "heart_rate_bpm", "cpsc2019_manifest"]

_SHOWN = 5  # skipped records named in the warning


def _skipped_message(what: str, skipped: list[str], total: int) -> str:
    more = f"; and {len(skipped) - _SHOWN} more" if len(skipped) > _SHOWN else ""
    return f"{len(skipped)} of {total} {what} record(s) left out: {'; '.join(skipped[:_SHOWN])}{more}"


# ------------------------------------------------------------------------------------ CPSC 2021

_RECORD_NAME = re.compile(r"data_(\d+)_(\d+)$")
_CLASSES = ("non atrial fibrillation", "persistent atrial fibrillation", "paroxysmal atrial fibrillation")


def _af_record(base: str | Path) -> tuple[list[tuple[int, int]], int, float, str | None]:
    """``af_episodes`` plus the record class of the header comments (``None`` when absent)."""
    from ..io.wfdb import quiet_wfdb

    with quiet_wfdb() as wfdb:
        hdr = wfdb.rdheader(str(base))
        ann = wfdb.rdann(str(base), "atr")
    n = int(hdr.sig_len)
    episodes: list[tuple[int, int]] = []
    start = None
    for s, note in zip(ann.sample, ann.aux_note):
        note = (note or "").strip().rstrip("\x00")
        if note.startswith("(AF"):  # (AFIB and (AFL both count as atrial fibrillation/flutter episodes
            if start is None:
                start = int(s)
        elif note.startswith("(") and start is not None:
            episodes.append((start, int(s)))
            start = None
    if start is not None:
        episodes.append((start, n))
    comments = [str(c).strip().lower() for c in (hdr.comments or [])]
    return episodes, n, float(hdr.fs), next((c for c in comments if c in _CLASSES), None)


def af_episodes(base: str | Path) -> tuple[list[tuple[int, int]], int, float]:
    """AF episodes of a CPSC 2021 record from its ``.atr`` rhythm annotations: ``([(start, end)],
    n_samples, fs)`` in samples (end exclusive)."""
    return _af_record(base)[:3]


def _annotation_problem(episodes: list[tuple[int, int]], n: int, cls: str | None) -> str | None:
    """Why a record's AF episodes cannot be right, or ``None``."""
    late = [a for a, _ in episodes if a >= n]
    if late:
        return f"an AF episode starts at sample {late[0]}, after the record's {n} samples"
    if cls == _CLASSES[0] and episodes:
        return f"the header says {cls!r} but the .atr marks {len(episodes)} AF episode(s)"
    if cls in _CLASSES[1:] and not episodes:
        return f"the header says {cls!r} but the .atr marks no AF episode (a truncated .atr?)"
    return None


def beat_samples(base: str | Path) -> np.ndarray:
    """Sample indices of the beat (QRS) annotations of a record's ``.atr`` file (wfdb's
    ``is_qrs`` table: N, L, R, A, a, J, S, V, F, e, j, E, /, f, Q, ...)."""
    from ..io.wfdb import quiet_wfdb

    with quiet_wfdb() as wfdb:
        from wfdb.io.annotation import ann_label_table, is_qrs

        ann = wfdb.rdann(str(base), "atr")
    qrs = {str(sym) for sym, code in zip(ann_label_table["symbol"], ann_label_table["label_store"])
           if 0 <= int(code) < len(is_qrs) and is_qrs[int(code)]}
    keep = np.array([sym in qrs for sym in ann.symbol], dtype=bool)
    return np.asarray(ann.sample, dtype=np.int64)[keep]


def cpsc2021_manifest(root: str | Path, task: str = "af", *, window_s: float = 10.0, min_fraction: float = 0.5,
                      stride_s: float | None = None) -> pd.DataFrame:
    """One row per consecutive ``window_s`` window (the tail shorter than a window is dropped):
    ``path, record, patient_id, start_s, duration_s`` and ``AF`` (task ``af``, 0/1: at least
    ``min_fraction`` of the window inside AF episodes) or ``heart_rate`` (task ``hr``, beats/min
    from the beat annotations inside the window; windows with fewer than two beats are left out).

    ``stride_s`` (0 < stride_s <= window_s): windows also start every ``stride_s`` seconds; rows
    whose start is not on the consecutive grid get ``train_only = 1`` (kept only for training).
    Records that cannot be labelled (see the module docstring) are left out with one warning; a
    :class:`DatasetError` when none is left.
    """
    if task not in ("af", "hr"):
        raise DatasetError(f"unknown CPSC 2021 task {task!r}; choose one of ['af', 'hr'].")
    if stride_s is not None and not 0 < float(stride_s) <= window_s:
        raise DatasetError(f"stride_s={stride_s} must be in (0, {window_s}] seconds (window_s).")
    root = Path(root)
    heads = sorted(root.rglob("data_*_*.hea"))
    if not heads:
        raise DatasetError(f"no data_<patient>_<n>.hea files below {root}; root must be a CPSC 2021 folder.")
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for h in heads:
        base = h.with_suffix("")
        m = _RECORD_NAME.match(h.stem)
        if m is None:
            skipped.append(f"{h} (name not data_<patient>_<n>: no patient id)")
            continue
        if not base.with_suffix(".atr").exists():
            skipped.append(f"{h} (no .atr annotations)")
            continue
        try:
            episodes, n, fs, cls = _af_record(base)
            beats = beat_samples(base) if task == "hr" else None
        except Exception as exc:  # noqa: BLE001 - wfdb raises many types on a damaged file
            skipped.append(f"{h} (annotations unreadable: {type(exc).__name__}: {exc})")
            continue
        problem = _annotation_problem(episodes, n, cls)
        if problem:
            skipped.append(f"{h} ({problem})")
            continue
        rows.extend(_windows(h, m.group(1), episodes, beats, n, fs, window_s, min_fraction, stride_s))
    if skipped:
        msg = _skipped_message("CPSC 2021", skipped, len(heads))
        if not rows:
            raise DatasetError(f"{msg}; no usable record below {root}.")
        warnings.warn(f"{msg}. Fix or replace those files to use them.", stacklevel=2)
    return pd.DataFrame(rows)


def _windows(h: Path, pid: str, episodes: list[tuple[int, int]], beats: np.ndarray | None, n: int, fs: float,
             window_s: float, min_fraction: float, stride_s: float | None) -> list[dict[str, Any]]:
    inside = np.zeros(n, dtype=bool)
    for a, b in episodes:
        inside[a:b] = True
    w = int(round(window_s * fs))
    starts = [k * w for k in range(n // w)]
    if stride_s is not None:
        step = max(1, int(round(float(stride_s) * fs)))
        starts = sorted(set(starts) | set(range(0, n - w + 1, step)))
    rows = []
    for s0 in starts:
        row: dict[str, Any] = {"path": str(h), "record": f"{h.stem}#{s0 // w}" if s0 % w == 0 else f"{h.stem}@{s0 / fs:g}s",
                               "patient_id": pid, "start_s": s0 / fs, "duration_s": window_s}
        if beats is None:
            row["AF"] = int(float(inside[s0 : s0 + w].mean()) >= min_fraction)
        else:
            r = beats[(beats >= s0) & (beats < s0 + w)]
            if len(r) < 2:
                continue
            row["heart_rate"] = heart_rate_bpm(r, fs)
        if stride_s is not None:
            row["train_only"] = int(s0 % w != 0)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------ CPSC 2019

def heart_rate_bpm(r_peaks: np.ndarray, fs: float) -> float:
    """Mean heart rate from R-peak sample indices: 60 · (k − 1) / ((r_k − r_1) / fs)."""
    r = np.sort(np.asarray(r_peaks, dtype=float).ravel())
    if len(r) < 2:
        return float("nan")
    return float(60.0 * (len(r) - 1) / ((r[-1] - r[0]) / fs))


_MAX_MV = 32.767  # 16-bit samples at 1 µV


def cpsc2019_manifest(root: str | Path, out_dir: str | Path, task: str = "heart_rate", *, fs: float = 500.0) -> pd.DataFrame:
    """Convert CPSC 2019 MATLAB records to WFDB (``out_dir/records``, 16-bit, 1 µV resolution,
    samples beyond ±32.767 mV clipped with a warning) and return ``path, record, patient_id,
    heart_rate``.  Records without reference R peaks, with fewer than two, with peaks beyond the
    signal or unreadable are left out, named in one warning.  The lead is not named by the
    challenge; it is stored as ``ECG`` (feed it to a one-lead model with ``data.lead=ECG``)."""
    import scipy.io

    from ..io.wfdb import quiet_wfdb

    root, out = Path(root), Path(out_dir) / "records"
    mats = sorted((root / "data").glob("data_*.mat")) if (root / "data").is_dir() else sorted(root.rglob("data_*.mat"))
    if not mats:
        raise DatasetError(f"no data/data_NNNNN.mat files below {root}; root must be a CPSC 2019 folder.")
    out.mkdir(parents=True, exist_ok=True)
    rows, skipped, clipped = [], [], []
    group: dict[bytes, str] = {}  # sorted R peaks -> the first record holding them
    for m in mats:
        num = m.stem.split("_", 1)[1]
        ref = m.parent.parent / "ref" / f"R_{num}.mat"
        if not ref.exists():
            skipped.append(f"{m} (no reference R peaks {ref.name})")
            continue
        try:
            ecg = np.asarray(scipy.io.loadmat(m)["ecg"], dtype=np.float64).reshape(-1, 1)
            r = np.sort(np.asarray(scipy.io.loadmat(ref)["R_peak"], dtype=np.int64).ravel())
        except Exception as exc:  # noqa: BLE001 - scipy raises many types on a damaged file
            skipped.append(f"{m} (unreadable: {type(exc).__name__}: {exc})")
            continue
        if len(r) < 2:
            skipped.append(f"{m} ({len(r)} reference R peak(s): no heart rate)")
            continue
        if r[0] < 0 or r[-1] >= len(ecg):
            skipped.append(f"{m} (R peak at sample {int(r[-1] if r[-1] >= len(ecg) else r[0])}, outside its {len(ecg)} samples)")
            continue
        name = f"cpsc2019_{num}"
        if not (out / f"{name}.hea").exists():
            ecg = np.nan_to_num(ecg)
            if np.abs(ecg).max() > _MAX_MV:
                clipped.append(name)
                ecg = np.clip(ecg, -_MAX_MV, _MAX_MV)
            with quiet_wfdb() as wfdb:
                wfdb.wrsamp(name, fs=fs, units=["mV"], sig_name=["ECG"], p_signal=ecg, fmt=["16"],
                            adc_gain=[1000.0], baseline=[0], write_dir=str(out))
        rows.append({"path": str(out / f"{name}.hea"), "record": name, "patient_id": group.setdefault(r.tobytes(), name),
                     "heart_rate": heart_rate_bpm(r, fs)})
    if clipped:
        warnings.warn(f"{len(clipped)} CPSC 2019 record(s) hold samples beyond ±{_MAX_MV} mV (saturation), clipped "
                      f"there in {out}: {clipped[:_SHOWN]}", stacklevel=2)
    if skipped:
        msg = _skipped_message("CPSC 2019", skipped, len(mats))
        if not rows:
            raise DatasetError(f"{msg}; no usable record below {root}.")
        warnings.warn(f"{msg}.", stacklevel=2)
    return pd.DataFrame(rows)
