"""Fixtures for the evaluation tests: real records in PTB-XL and CinC 2021 layouts, a synthetic model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalhelpers import CINC, HR_RECORDS, SAME_PATIENT, SNOMED_TO_SCP, TEST_FOLD, header_dx


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
    """A small Net1D (tiny widths) with the real 150-label head and the published contract: the
    evaluation code paths do not depend on the width, and the 30.8 M-parameter model costs ~1 min here."""
    import torch

    from ecgfounder.labels import load_labels
    from ecgfounder.models.loading import save_model
    from ecgfounder.models.net1d import Net1D, Net1DConfig
    from ecgfounder.signal.preprocess import PreprocessContract

    torch.manual_seed(0)
    m = Net1D(Net1DConfig(base_filters=8, filter_list=(16, 32), m_blocks_list=(1, 2), n_classes=150))
    m.contract, m.labels = PreprocessContract(), load_labels()
    return save_model(m.eval(), tmp_path_factory.mktemp("ckpt") / "tiny_12lead.safetensors")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def synthetic_model(synthetic_checkpoint):
    from ecgfounder.models.loading import load_model

    return load_model(synthetic_checkpoint)
