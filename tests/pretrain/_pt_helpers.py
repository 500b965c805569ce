"""Helpers: small shard stores built from the real records in tests/data, at a reduced rate (125 Hz, 5-s
windows) so that tests stay fast; the production contract is 500 Hz × 10 s."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

import ecgfounder
from ecgfounder.io import write
from ecgfounder.signal.preprocess import PreprocessContract

DATA = Path(__file__).resolve().parents[1] / "data"
SMALL_CONTRACT = PreprocessContract(fs=125.0, n_samples=625)
PLANT_HZ = 30.0


def real_records() -> list[Path]:
    """Records at several rates and lead sets: CinC 2021 (500 Hz, 12 leads), CPSC 2021 (200 Hz,
    leads I and II), vendor files (MUSE, Sierra, HL7: 500 Hz, 12 leads, with statements)."""
    cinc = sorted((DATA / "cinc2021").glob("*.hea"))
    cpsc = sorted((DATA / "train" / "cpsc2021").glob("*.hea"))[:2]
    vendor = [DATA / "formats" / "muse_xml" / "musePHI_muse_ecg1.xml",
              DATA / "formats" / "sierra_xml" / "v1.04_3191723_ZZDEMOPTONLY_1-04_orig.xml",
              DATA / "formats" / "hl7_aecg" / "hl7_2003-12_example_aECG.xml"]
    return cinc + cpsc + vendor


def write_planted(records: list[Path], folder: Path, *, pu: bool = False, amplitude: float = 0.5) -> list[tuple[Path, bool]]:
    """Copies of ``records`` as ``.npz`` in which every second record carries a 9 Hz, 0.4 mV
    oscillation on every lead and the statement "Planted oscillation"; the others say "No
    planted oscillation" (a negated statement).  ``pu``: positive-unlabelled setting instead: only
    every second planted record says so, and no record states the absence."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, p in enumerate(records):
            rec = ecgfounder.read(p)
            planted = i % 2 == 0
            sig = np.nan_to_num(rec.signal.copy())
            stm = list(rec.meta.get("statements") or ())
            if planted:
                t = np.arange(sig.shape[1]) / rec.fs
                sig = sig + amplitude * np.sin(2 * np.pi * PLANT_HZ * t + i)[None, :]
                if not pu or i % 4 == 0:
                    stm.append("Planted oscillation")
            elif not pu:
                stm.append("No planted oscillation")
            meta = {"id": rec.id or p.stem, "statements": stm}
            if rec.meta.get("dx"):
                meta["dx"] = list(rec.meta["dx"])
            q = write(rec.replace(signal=sig, meta=meta), folder / f"{i:03d}_{p.stem}.npz")
            out.append((q, planted))
    return out




def write_long_record(folder: Path, monkeypatch, seconds: float = 60.0) -> Path:
    """A 2-lead 125-Hz WFDB record of ``seconds`` (a Holter in small) and the readers' value limit
    lowered below its size (2 × 7,500 values for 60 s against 10,000), as a 24-h recording meets the
    real 100 M; its first 20 s fit."""
    import ecgfounder.io.limits as limits
    from ecgfounder.recording import Recording

    fs = 125.0
    t = np.arange(int(seconds * fs)) / fs
    sig = np.stack([np.sin(2 * np.pi * 1.2 * t), 0.5 * np.sin(2 * np.pi * 1.2 * t + 1.0)])
    sig = sig + 0.01 * np.random.default_rng(0).standard_normal(sig.shape)
    hea = write(Recording(sig, fs, ("I", "II")), folder / "holter.hea")
    monkeypatch.setattr(limits, "MAX_VALUES", 10_000)
    return hea
