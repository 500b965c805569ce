"""Fixtures of the prediction tests: a small model in our format and a folder of synthetic records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

N_RECORDS = 40  # enough for three shards and interruptions at the 31st and 37th record


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A small Net1D with the 150 labels (fast), saved in our format."""
    import torch

    from ecgfounder.labels import load_labels
    from ecgfounder.models.loading import save_model
    from ecgfounder.models.net1d import Net1D, Net1DConfig
    from ecgfounder.signal.preprocess import PreprocessContract

    torch.manual_seed(0)
    m = Net1D(Net1DConfig(base_filters=8, filter_list=(16, 32), m_blocks_list=(1, 1), n_classes=150))
    m.contract, m.labels = PreprocessContract(), load_labels()
    return save_model(m, tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


def write_wfdb16(folder: Path, name: str, sig: np.ndarray, fs: float, leads: list[str], gain: float = 1000.0) -> None:
    """``sig`` (samples, leads) in mV as a WFDB record of format 16 (every header field written, as
    wfdb.wrsamp writes them: initial value and checksum too).  wfdb.wrsamp took 50 ms a record."""
    digital = np.round(np.asarray(sig) * gain).astype("<i2")
    digital.tofile(folder / f"{name}.dat")
    lines = [f"{name} {len(leads)} {fs:g} {len(digital)}"]
    for j, lead in enumerate(leads):
        check = int(digital[:, j].astype(np.int64).sum()) % 65536  # (16 bits, as wfdb writes it)
        lines.append(f"{name}.dat 16 {gain:g}(0)/mV 16 0 {int(digital[0, j])} {check} 0 {lead}")
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def records(tmp_path_factory) -> Path:
    """N_RECORDS synthetic 12-lead WFDB records (4 s at 500 Hz) and one unreadable file."""
    from ecgfounder.signal.leads import STANDARD_12

    d = tmp_path_factory.mktemp("recs")
    rng = np.random.default_rng(0)
    t = np.arange(2000) / 500
    for i in range(N_RECORDS):
        sig = np.sin(2 * np.pi * rng.uniform(0.8, 2) * t)[:, None] * rng.uniform(0.5, 1.5, 12)
        sig = sig + 0.05 * rng.standard_normal((2000, 12))
        write_wfdb16(d, f"r{i:04d}", sig, 500, list(STANDARD_12))
    (d / "r0027.hea").write_text("garbage\n")  # one bad record in the middle
    return d


@pytest.fixture
def folder_of(records):
    """``folder_of(dst, n=4)``: a new folder ``dst`` holding copies of the first ``n`` records."""
    import shutil

    def make(dst: Path, n: int = 4) -> Path:
        dst.mkdir()
        for i in range(n):
            for ext in (".hea", ".dat"):
                shutil.copy(records / f"r{i:04d}{ext}", dst / f"r{i:04d}{ext}")
        return dst

    return make


def interrupt_at(monkeypatch, n: int) -> None:
    """Make the ``n``-th result row of a run raise ``KeyboardInterrupt`` (Ctrl-C mid-run)."""
    import importlib

    pred = importlib.import_module("ecgfounder.prediction.stream")
    real, calls = pred.result_rows, {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(pred, "result_rows", flaky)


@pytest.fixture
def interrupt(monkeypatch):
    """``interrupt(n)``: the ``n``-th result row of the next run raises ``KeyboardInterrupt``."""
    return lambda n: interrupt_at(monkeypatch, n)
