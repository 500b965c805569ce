"""CPSC 2021 and CPSC 2019 manifests on the real sample records (tests/data/train, see its
SOURCES.md): damaged annotations leave their record out with one warning, records of one moment
stay in one group, records without a heart rate are named."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from ecgfounder.datasets import DatasetError, cpsc2019_manifest, cpsc2021_manifest

DATA = Path(__file__).resolve().parents[1] / "data" / "train"


def _copy21(dst: Path, *names: str) -> Path:
    for name in names:
        for ext in (".hea", ".dat", ".atr"):
            shutil.copy(DATA / "cpsc2021" / f"{name}{ext}", dst / f"{name}{ext}")
    return dst


def _damage(root: Path, how: str) -> None:
    atr, hea = root / "data_92_12.atr", root / "data_92_12.hea"
    if how == "truncated":  # the beats before the AF episode survive: read without error, no episode
        atr.write_bytes(atr.read_bytes()[:20])
    elif how == "garbage":
        atr.write_bytes(b"garbage")
    elif how == "missing":
        atr.unlink()
    elif how == "header contradicts":  # a paroxysmal record whose header calls it non-AF
        hea.write_text(hea.read_text().replace("paroxysmal atrial fibrillation", "non atrial fibrillation"))


@pytest.mark.parametrize("how", ["truncated", "garbage", "missing", "header contradicts"])
def test_cpsc2021_damaged_annotations_leave_the_record_out_with_one_warning(tmp_path, how):
    root = _copy21(tmp_path, "data_8_4", "data_92_12")
    _damage(root, how)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = cpsc2021_manifest(root)
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "1 of 2 CPSC 2021 record(s) left out" in msgs[0] and "data_92_12" in msgs[0], msgs
    # the old code labelled the truncated/contradicted record all 0 and stopped on the garbage
    assert set(df.patient_id) == {"8"} and df.AF.tolist() == [1, 1, 1, 1]


def test_cpsc2021_no_usable_record_is_one_error(tmp_path):
    root = _copy21(tmp_path, "data_92_12")
    _damage(root, "garbage")
    with pytest.raises(DatasetError, match=r"1 of 1 CPSC 2021 record\(s\) left out: .*data_92_12.*unreadable.*no usable record"):
        cpsc2021_manifest(root)


def test_cpsc2021_name_without_patient_is_named_not_made_a_patient(tmp_path):
    root = _copy21(tmp_path, "data_8_4", "data_92_12")
    for ext in (".hea", ".dat", ".atr"):
        (root / f"data_92_12{ext}").rename(root / f"data_92_12_b{ext}")
    with pytest.warns(UserWarning, match=r"data_92_12_b\.hea \(name not data_<patient>_<n>"):
        df = cpsc2021_manifest(root)
    assert set(df.patient_id) == {"8"}  # was patient 'data_92_12_b'


# ------------------------------------------------------------------------------------ CPSC 2019

def _copy19(dst: Path, *nums: str) -> Path:
    for sub, pre in (("data", "data"), ("ref", "R")):
        (dst / sub).mkdir(parents=True, exist_ok=True)
        for n in nums:
            shutil.copy(DATA / "cpsc2019" / sub / f"{pre}_{n}.mat", dst / sub / f"{pre}_{n}.mat")
    return dst


def test_cpsc2019_records_of_one_moment_share_a_group(tmp_path):
    """01234, 01235 and 01240 hold the same 24 reference R peaks (the same 10 s, different
    signals): as separate groups their equal heart rates could sit in training and test."""
    import scipy.io

    from ecgfounder.train.splits import assign_splits

    root = _copy19(tmp_path / "src", "00014", "01234", "01235", "01240", "00619")
    peaks = {n: scipy.io.loadmat(root / "ref" / f"R_{n}.mat")["R_peak"].ravel() for n in ("01234", "01235", "01240")}
    assert all(np.array_equal(peaks["01234"], p) for p in peaks.values())
    df = cpsc2019_manifest(root, tmp_path / "out").set_index("record")
    same = df.loc[["cpsc2019_01234", "cpsc2019_01235", "cpsc2019_01240"], "patient_id"]
    assert same.nunique() == 1 and df.patient_id.nunique() == 3
    for seed in range(5):
        split = assign_splits(df.reset_index(), fractions=(0.34, 0.33, 0.33), seed=seed, task="regression")
        assert split.set_index("record").loc[same.index, "split"].nunique() == 1


def _write19(root: Path, num: str, ecg: np.ndarray, peaks) -> None:
    import scipy.io

    for sub in ("data", "ref"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "data" / f"data_{num}.mat", {"ecg": ecg.reshape(-1, 1)})
    if peaks is not None:
        scipy.io.savemat(root / "ref" / f"R_{num}.mat", {"R_peak": np.asarray(peaks, dtype=np.uint16).reshape(-1, 1)})


def test_cpsc2019_records_without_a_heart_rate_are_named_in_one_warning(tmp_path):
    ecg = np.zeros(5000)
    _write19(tmp_path, "00001", ecg, [100, 600, 1100])  # 60 beats/min
    _write19(tmp_path, "00002", ecg, [2500])  # one peak: used to vanish without a word
    _write19(tmp_path, "00003", ecg, None)  # no reference file
    _write19(tmp_path, "00004", ecg, [100, 6000])  # a peak beyond the 5000 samples
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = cpsc2019_manifest(tmp_path, tmp_path / "out")
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1, msgs
    assert "3 of 4 CPSC 2019 record(s) left out" in msgs[0]
    assert "data_00002.mat (1 reference R peak(s)" in msgs[0] and "data_00003.mat (no reference R peaks" in msgs[0]
    assert "data_00004.mat (R peak at sample 6000, outside its 5000 samples)" in msgs[0]
    assert df.record.tolist() == ["cpsc2019_00001"] and df.heart_rate[0] == pytest.approx(60.0)
    _write19(tmp_path / "bad", "00002", ecg, [2500])
    with pytest.raises(DatasetError, match="no usable record"):
        cpsc2019_manifest(tmp_path / "bad", tmp_path / "out2")


def test_cpsc2019_saturated_samples_clipped_not_a_crash(tmp_path):
    """A sample beyond the 16-bit range at 1 µV (±32.767 mV) used to stop the conversion of every
    record with wfdb's IndexError."""
    import wfdb

    ecg = np.sin(np.arange(5000) / 50.0)
    ecg[1000] = 40.0
    _write19(tmp_path, "00001", ecg, [100, 600, 1100])
    with pytest.warns(UserWarning, match=r"1 CPSC 2019 record\(s\) hold samples beyond .*clipped.*cpsc2019_00001"):
        df = cpsc2019_manifest(tmp_path, tmp_path / "out")
    sig = wfdb.rdrecord(df.path[0][:-4]).p_signal[:, 0]
    assert sig[1000] == pytest.approx(32.767)
    np.testing.assert_allclose(np.delete(sig, 1000), np.delete(ecg, 1000), atol=6e-4)
