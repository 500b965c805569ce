"""CPSC 2021 (paroxysmal AF Holter excerpts) and CPSC 2019 (10-s single-lead QRS records).

* ``cpsc2021_manifest(root, task)``: consecutive 10-s windows of each record, ``patient_id``
  from the file name ``data_<patient>_<n>``.  Task ``af``: ``AF`` = 1 when at least half of the
  window lies inside an ``(AFIB`` … ``(N`` episode of the ``.atr`` annotations.  Task ``hr``:
  ``heart_rate`` (beats/min) of the window from the ``.atr`` beat annotations (the QRS labels N,
  A, a, V, ...).  With ``stride_s`` windows also start every ``stride_s`` seconds in between;
  those extra rows carry ``train_only = 1`` and are kept for the training split only.
* ``cpsc2019_manifest(root, out_dir)``: MATLAB ``data/data_NNNNN.mat`` + reference R peaks
  ``ref/R_NNNNN.mat``, converted once to WFDB under ``out_dir/records``; target ``heart_rate``
  (beats/min) = 60 · (number of R-R intervals) / (time from first to last R peak).  No patient
  ids are published: each record is its own group.
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


# ------------------------------------------------------------------------------------ CPSC 2021

def af_episodes(base: str | Path) -> tuple[list[tuple[int, int]], int, float]:
    """AF episodes of a CPSC 2021 record from its ``.atr`` rhythm annotations: ``([(start, end)],
    n_samples, fs)`` in samples (end exclusive)."""
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
    return episodes, n, float(hdr.fs)


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
    ``path, record, patient_id, start_s, duration_s`` and ``AF`` (task ``af``, 0/1) or
    ``heart_rate`` (task ``hr``, beats/min from the beat annotations inside the window; windows
    with fewer than two beats are left out).

    ``stride_s`` (0 < stride_s < window_s): windows also start every ``stride_s`` seconds; rows
    whose start is not on the consecutive grid get ``train_only = 1`` (kept only for training).
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
    for h in heads:
        base = h.with_suffix("")
        if not base.with_suffix(".atr").exists():
            warnings.warn(f"{h}: no .atr annotations; record skipped.", stacklevel=2)
            continue
        episodes, n, fs = af_episodes(base)
        beats = beat_samples(base) if task == "hr" else None
        m = re.match(r"data_(\d+)_(\d+)$", h.stem)
        pid = m.group(1) if m else h.stem
        inside = np.zeros(n, dtype=bool)
        for a, b in episodes:
            inside[a:b] = True
        w = int(round(window_s * fs))
        starts = [k * w for k in range(n // w)]
        if stride_s is not None:
            step = max(1, int(round(float(stride_s) * fs)))
            starts = sorted(set(starts) | set(range(0, n - w + 1, step)))
        for s0 in starts:
            row: dict[str, Any] = {"path": str(h), "record": f"{h.stem}#{s0 // w}" if s0 % w == 0 else f"{h.stem}@{s0 / fs:g}s", "patient_id": pid,
                                   "start_s": s0 / fs, "duration_s": window_s}
            if task == "af":
                row["AF"] = int(float(inside[s0 : s0 + w].mean()) >= min_fraction)
            else:
                r = beats[(beats >= s0) & (beats < s0 + w)]
                if len(r) < 2:
                    continue
                row["heart_rate"] = heart_rate_bpm(r, fs)
            if stride_s is not None:
                row["train_only"] = int(s0 % w != 0)
            rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ CPSC 2019

def heart_rate_bpm(r_peaks: np.ndarray, fs: float) -> float:
    """Mean heart rate from R-peak sample indices: 60 · (k − 1) / ((r_k − r_1) / fs)."""
    r = np.sort(np.asarray(r_peaks, dtype=float).ravel())
    if len(r) < 2:
        return float("nan")
    return float(60.0 * (len(r) - 1) / ((r[-1] - r[0]) / fs))


def cpsc2019_manifest(root: str | Path, out_dir: str | Path, task: str = "heart_rate", *, fs: float = 500.0) -> pd.DataFrame:
    """Convert CPSC 2019 MATLAB records to WFDB (``out_dir/records``, 16-bit, 1 µV resolution)
    and return ``path, record, patient_id, heart_rate``.  The lead is not named by the challenge;
    it is stored as ``ECG`` (feed it to a one-lead model with ``data.lead=ECG``)."""
    import scipy.io

    from ..io.wfdb import quiet_wfdb

    root, out = Path(root), Path(out_dir) / "records"
    mats = sorted((root / "data").glob("data_*.mat")) if (root / "data").is_dir() else sorted(root.rglob("data_*.mat"))
    if not mats:
        raise DatasetError(f"no data/data_NNNNN.mat files below {root}; root must be a CPSC 2019 folder.")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for m in mats:
        num = m.stem.split("_", 1)[1]
        ref = m.parent.parent / "ref" / f"R_{num}.mat"
        if not ref.exists():
            warnings.warn(f"{m}: no reference R peaks {ref.name}; record skipped.", stacklevel=2)
            continue
        ecg = np.asarray(scipy.io.loadmat(m)["ecg"], dtype=np.float64).reshape(-1, 1)
        r = np.asarray(scipy.io.loadmat(ref)["R_peak"]).ravel()
        hr = heart_rate_bpm(r, fs)
        if not np.isfinite(hr):
            continue
        name = f"cpsc2019_{num}"
        if not (out / f"{name}.hea").exists():
            ecg = np.nan_to_num(ecg)
            with quiet_wfdb() as wfdb:
                wfdb.wrsamp(name, fs=fs, units=["mV"], sig_name=["ECG"], p_signal=ecg, fmt=["16"],
                            adc_gain=[1000.0], baseline=[0], write_dir=str(out))
        rows.append({"path": str(out / f"{name}.hea"), "record": name, "patient_id": name, "heart_rate": hr})
    return pd.DataFrame(rows)


