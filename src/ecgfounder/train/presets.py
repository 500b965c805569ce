"""Manifest builders for known datasets.

``build_preset(name, root, out_dir, task=None) -> (manifest DataFrame, defaults)`` where
``defaults`` suggests the task type.  Each builder documents where its labels, patients and
splits come from.

* ``ptbxl``: PTB-XL (``ptbxl_database.csv``, ``scp_statements.csv`` and the ``records500`` WFDB
  files); the benchmark tasks of Strodthoff et al. (2021): ``all``, ``diagnostic``,
  ``subdiagnostic``, ``superdiagnostic``, ``form``, ``rhythm``; folds 1–8 train, 9 validation,
  10 test (``strat_fold``, patient-respecting by construction); ``patient_id`` kept.
* ``cinc2021``: PhysioNet/CinC Challenge 2021 WFDB records; the challenge's scored SNOMED-CT
  classes (equivalent codes merged as the challenge scores them), multi-label.  The challenge
  publishes no patient ids: every record is its own group.
* ``cpsc2021``: CPSC 2021 paroxysmal-AF Holter excerpts; consecutive 10-s windows of each record,
  ``patient_id`` from the file name ``data_<patient>_<n>``.  Task ``af``: ``AF`` = 1 when at least
  half of the window lies inside an ``(AFIB`` … ``(N`` episode of the ``.atr`` annotations.  Task
  ``hr``: ``heart_rate`` (beats/min) of the window from the ``.atr`` beat annotations (the QRS
  labels N, A, a, V, ...).  With ``stride_s`` (``data.train_stride_s``) windows also start every
  ``stride_s`` seconds in between; those extra rows carry ``train_only = 1`` and are kept for the
  training split only (validation and test windows stay consecutive and non-overlapping).
* ``cpsc2019``: CPSC 2019 10-s single-lead records (MATLAB ``data/data_NNNNN.mat`` + reference
  R peaks ``ref/R_NNNNN.mat``), converted once to WFDB under ``out_dir/records``; target
  ``heart_rate`` (beats/min) = 60 · (number of R-R intervals) / (time from first to last R peak).
  No patient ids are published: each record is its own group.
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .manifest import ManifestError

__all__ = [
    "build_preset",
    "ptbxl_manifest",
    "cinc2021_manifest",
    "cpsc2021_manifest",
    "cpsc2019_manifest",
    "af_episodes",
    "beat_samples",
    "heart_rate_bpm",
    "PTBXL_TASKS",
    "CINC2021_SCORED",
    "PRESET_TASKS",
]

PTBXL_TASKS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")

# CinC 2021 scored classes: SNOMED-CT code -> abbreviation; codes scored as one class share a name.
CINC2021_SCORED: dict[str, str] = {
    "164889003": "AF", "164890007": "AFL", "6374002": "BBB", "426627000": "Brady",
    "733534002": "LBBB", "164909002": "LBBB", "713427006": "RBBB", "59118001": "RBBB",
    "270492004": "IAVB", "713426002": "IRBBB", "39732003": "LAD", "445118002": "LAnFB",
    "251146004": "LQRSV", "698252002": "NSIVCB", "426783006": "NSR", "284470004": "PAC",
    "63593006": "PAC", "10370003": "PR", "365413008": "PRWP", "427172004": "PVC", "17338001": "PVC",
    "164947007": "LPR", "111975006": "LQT", "164917005": "QAb", "47665007": "RAD",
    "427393009": "SA", "426177001": "SB", "427084000": "STach", "164934002": "TAb", "59931005": "TInv",
}

PRESET_TASKS: dict[str, tuple[str, ...]] = {
    "ptbxl": PTBXL_TASKS,
    "cinc2021": ("scored",),
    "cpsc2021": ("af", "hr"),
    "cpsc2019": ("heart_rate",),
}

PRESET_TASK_TYPE = {"ptbxl": "multilabel", "cinc2021": "multilabel", "cpsc2021": "binary", "cpsc2019": "regression"}
# task type per (preset, preset task) where it differs from PRESET_TASK_TYPE
PRESET_SUBTASK_TYPE = {("cpsc2021", "hr"): "regression"}


# --------------------------------------------------------------------------------------- PTB-XL

def ptbxl_manifest(root: str | Path, task: str = "superdiagnostic", *, sampling: int = 500) -> pd.DataFrame:
    """PTB-XL benchmark manifest (one row per ECG) for ``task`` (see :data:`PTBXL_TASKS`).

    Labels: every SCP statement of the task present in the record's ``scp_codes`` (whatever its
    likelihood, as in the benchmark); sub-/super-diagnostic tasks map diagnostic statements to their
    ``diagnostic_subclass`` / ``diagnostic_class``.  Records with no label of the task are left out.
    """
    root = Path(root)
    if task not in PTBXL_TASKS:
        raise ManifestError(f"unknown PTB-XL task {task!r}; choose one of {list(PTBXL_TASKS)}.")
    db_file, st_file = root / "ptbxl_database.csv", root / "scp_statements.csv"
    for f in (db_file, st_file):
        if not f.is_file():
            raise ManifestError(f"{f} not found: data.root must be the PTB-XL folder (with ptbxl_database.csv).")
    db = pd.read_csv(db_file)
    st = pd.read_csv(st_file, index_col=0)
    need = {"ecg_id", "patient_id", "scp_codes", "strat_fold"}
    if need - set(db.columns):
        raise ManifestError(f"{db_file}: missing columns {sorted(need - set(db.columns))}.")
    fcol = "filename_hr" if sampling == 500 else "filename_lr"

    def flag(col: str) -> set[str]:
        return set(st.index[st[col].fillna(0).astype(float) == 1.0]) if col in st.columns else set()

    diag = flag("diagnostic")
    if task == "all":
        mapping = {c: c for c in st.index}
    elif task == "diagnostic":
        mapping = {c: c for c in diag}
    elif task == "subdiagnostic":
        mapping = {c: st.loc[c, "diagnostic_subclass"] for c in diag if isinstance(st.loc[c, "diagnostic_subclass"], str)}
    elif task == "superdiagnostic":
        mapping = {c: st.loc[c, "diagnostic_class"] for c in diag if isinstance(st.loc[c, "diagnostic_class"], str)}
    else:
        mapping = {c: c for c in flag(task)}
    rows_labels: list[set[str]] = []
    for codes in db["scp_codes"]:
        d = ast.literal_eval(codes) if isinstance(codes, str) else {}
        rows_labels.append({mapping[c] for c in d if c in mapping})
    labels = sorted(set().union(*rows_labels)) if rows_labels else []
    keep = np.array([bool(s) for s in rows_labels])
    out = pd.DataFrame({
        "path": [str(root / f"{p}.hea") for p in db[fcol]],
        "record": db["ecg_id"].astype(int).astype(str),
        "patient_id": db["patient_id"].astype(float).astype(int).astype(str),
        "split": np.where(db["strat_fold"] <= 8, "train", np.where(db["strat_fold"] == 9, "val", "test")),
    })
    for lab in labels:
        out[lab] = [int(lab in s) for s in rows_labels]
    return out[keep].reset_index(drop=True)


# ------------------------------------------------------------------------------------ CinC 2021

def cinc2021_manifest(root: str | Path, task: str = "scored") -> pd.DataFrame:
    """CinC 2021 manifest: one row per ``.hea`` below ``root``; one 0/1 column per scored class
    present in the data; ``source`` = database prefix of the record name."""
    import wfdb

    root = Path(root)
    heads = sorted(root.rglob("*.hea"))
    if not heads:
        raise ManifestError(f"no .hea files below {root}; data.root must be a CinC 2021 folder.")
    rows: list[dict[str, Any]] = []
    for h in heads:
        try:
            hdr = wfdb.rdheader(str(h.with_suffix("")))
        except Exception as exc:  # wfdb raises bare Exceptions
            warnings.warn(f"{h}: unreadable header skipped ({exc})", stacklevel=2)
            continue
        dx: list[str] = []
        for line in hdr.comments or []:
            m = re.match(r"\s*Dx\s*:\s*(.*)$", line, flags=re.I)
            if m:
                dx = [c.strip() for c in m.group(1).split(",") if c.strip()]
        name = h.stem
        rows.append({"path": str(h), "record": name, "source": re.match(r"[A-Za-z]+", name).group(0) if re.match(r"[A-Za-z]+", name) else "",
                     "_labels": {CINC2021_SCORED[c] for c in dx if c in CINC2021_SCORED}})
    labels = sorted(set().union(*(r["_labels"] for r in rows)))
    out = pd.DataFrame([{k: v for k, v in r.items() if k != "_labels"} for r in rows])
    out["patient_id"] = out["record"]
    for lab in labels:
        out[lab] = [int(lab in r["_labels"]) for r in rows]
    return out


# ------------------------------------------------------------------------------------ CPSC 2021

def af_episodes(base: str | Path) -> tuple[list[tuple[int, int]], int, float]:
    """AF episodes of a CPSC 2021 record from its ``.atr`` rhythm annotations: ``([(start, end)],
    n_samples, fs)`` in samples (end exclusive)."""
    import wfdb

    hdr = wfdb.rdheader(str(base))
    n = int(hdr.sig_len)
    ann = wfdb.rdann(str(base), "atr")
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
    import wfdb
    from wfdb.io.annotation import ann_label_table, is_qrs

    qrs = {str(sym) for sym, code in zip(ann_label_table["symbol"], ann_label_table["label_store"])
           if 0 <= int(code) < len(is_qrs) and is_qrs[int(code)]}
    ann = wfdb.rdann(str(base), "atr")
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
        raise ManifestError(f"unknown CPSC 2021 task {task!r}; choose one of ['af', 'hr'].")
    if stride_s is not None and not 0 < float(stride_s) <= window_s:
        raise ManifestError(f"data.train_stride_s={stride_s} must be in (0, {window_s}] seconds.")
    root = Path(root)
    heads = sorted(root.rglob("data_*_*.hea"))
    if not heads:
        raise ManifestError(f"no data_<patient>_<n>.hea files below {root}; data.root must be a CPSC 2021 folder.")
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
    import wfdb

    root, out = Path(root), Path(out_dir) / "records"
    mats = sorted((root / "data").glob("data_*.mat")) if (root / "data").is_dir() else sorted(root.rglob("data_*.mat"))
    if not mats:
        raise ManifestError(f"no data/data_NNNNN.mat files below {root}; data.root must be a CPSC 2019 folder.")
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
            wfdb.wrsamp(name, fs=fs, units=["mV"], sig_name=["ECG"], p_signal=ecg, fmt=["16"],
                        adc_gain=[1000.0], baseline=[0], write_dir=str(out))
        rows.append({"path": str(out / f"{name}.hea"), "record": name, "patient_id": name, "heart_rate": hr})
    return pd.DataFrame(rows)


def build_preset(name: str, root: str | Path, out_dir: str | Path, task: str | None = None, *,
                 stride_s: float | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``(manifest, {"task": task type, "preset_task": task})`` for a known dataset.

    ``stride_s``: extra training windows every ``stride_s`` seconds (presets cut into windows:
    ``cpsc2021``); refused for the others."""
    if name not in PRESET_TASKS:
        raise ManifestError(f"unknown preset {name!r}; choose one of {sorted(PRESET_TASKS)}.")
    task = task or ("superdiagnostic" if name == "ptbxl" else PRESET_TASKS[name][0])
    if task not in PRESET_TASKS[name]:
        raise ManifestError(f"preset {name} has no task {task!r}; choose one of {list(PRESET_TASKS[name])}.")
    if not Path(root).exists():
        raise ManifestError(f"dataset folder {root} not found (data.root).")
    if stride_s is not None and name != "cpsc2021":
        raise ManifestError(f"data.train_stride_s applies to presets cut into windows (cpsc2021), not {name}; "
                            "leave it unset.")
    if name == "ptbxl":
        df = ptbxl_manifest(root, task)
    elif name == "cinc2021":
        df = cinc2021_manifest(root, task)
    elif name == "cpsc2021":
        df = cpsc2021_manifest(root, task, stride_s=stride_s)
    else:
        df = cpsc2019_manifest(root, out_dir, task)
    if df.empty:
        raise ManifestError(f"preset {name} found no usable records below {root}.")
    return df, {"task": PRESET_SUBTASK_TYPE.get((name, task), PRESET_TASK_TYPE[name]), "preset_task": task}
