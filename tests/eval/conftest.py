"""Fixtures for the evaluation tests: real records in PTB-XL and CinC 2021 layouts, a synthetic model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"
CINC = DATA / "cinc2021"
HR_RECORDS = [f"HR0600{i}" for i in range(10)]

# SNOMED Dx codes of the ten HR (PTB-XL) records → the SCP-ECG statements PTB-XL uses for them,
# with PTB-XL's likelihood convention (100 for diagnostic statements, 0 for rhythm/form ones).
SNOMED_TO_SCP = {
    "426783006": ("SR", 0.0),
    "426177001": ("SBRAD", 0.0),
    "427084000": ("STACH", 0.0),
    "713426002": ("IRBBB", 100.0),
    "164934002": ("NDT", 100.0),
    "55930002": ("NST_", 100.0),
}
# fold 10 (test): HR06001 (ST change), HR06003 (sinus tachycardia) and three sinus-rhythm records
TEST_FOLD = {"HR06001", "HR06003", "HR06004", "HR06005", "HR06009"}
SAME_PATIENT = {"HR06004": 9004, "HR06005": 9004}


def header_dx(hea: Path) -> list[str]:
    for line in hea.read_text().splitlines():
        if line.startswith("# Dx:"):
            return [c.strip() for c in line.split(":", 1)[1].split(",") if c.strip()]
    raise AssertionError(f"no Dx in {hea}")


@pytest.fixture(scope="session")
def ptbxl_root(tmp_path_factory) -> Path:
    """A PTB-XL 1.0.x folder (ptbxl_database.csv + records500/) holding the ten real HR records."""
    import wfdb

    root = tmp_path_factory.mktemp("ptbxl")
    rows = []
    for k, name in enumerate(HR_RECORDS):
        rec = wfdb.rdrecord(str(CINC / name))
        ecg_id = int(name[2:])
        sub = root / "records500" / f"{(ecg_id // 1000) * 1000:05d}"
        sub.mkdir(parents=True, exist_ok=True)
        base = f"{ecg_id:05d}_hr"
        wfdb.wrsamp(
            base, fs=rec.fs, units=["mV"] * rec.n_sig, sig_name=rec.sig_name,
            p_signal=rec.p_signal, fmt=["16"] * rec.n_sig, adc_gain=[1000.0] * rec.n_sig,
            baseline=[0] * rec.n_sig, write_dir=str(sub),
        )
        scp = {SNOMED_TO_SCP[c][0]: SNOMED_TO_SCP[c][1] for c in header_dx(CINC / f"{name}.hea")}
        rows.append({
            "ecg_id": ecg_id,
            "patient_id": float(SAME_PATIENT.get(name, 1000 + k)),
            "scp_codes": repr(scp),
            "strat_fold": 10 if name in TEST_FOLD else 1 + k % 9,
            "filename_lr": f"records100/{(ecg_id // 1000) * 1000:05d}/{ecg_id:05d}_lr",
            "filename_hr": f"records500/{(ecg_id // 1000) * 1000:05d}/{base}",
        })
    pd.DataFrame(rows).to_csv(root / "ptbxl_database.csv", index=False)
    return root


@pytest.fixture(scope="session")
def cinc_root(tmp_path_factory) -> Path:
    """The 20 real CinC 2021 records, copied so tests may add files beside them."""
    root = tmp_path_factory.mktemp("cinc2021") / "training"
    shutil.copytree(CINC, root)
    return root


@pytest.fixture(scope="session")
def synthetic_checkpoint(tmp_path_factory) -> Path:
    loading = pytest.importorskip("ecgfounder.models.loading")
    return loading.build_synthetic_checkpoint(tmp_path_factory.mktemp("ckpt") / "synthetic_12lead.pth")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
