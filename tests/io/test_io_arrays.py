"""WFDB, EDF, NumPy, CSV and HDF5 readers, and round trips through ecgfounder.io.write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError
from ecgfounder.recording import Recording
from ecgfounder.signal.leads import STANDARD_12

TESTS = Path(__file__).resolve().parent.parent / "data"
CINC = TESTS / "cinc2021"
MITDB = TESTS / "mitdb" / "100.hea"


@pytest.fixture(scope="module")
def cinc_rec() -> Recording:
    return eio.read(CINC / "E07500.hea")


def test_wfdb_challenge_mat_with_header_comments(cinc_rec):
    import wfdb

    rec = cinc_rec
    assert rec.leads == STANDARD_12 and rec.fs == 500 and rec.signal.shape == (12, 5000)
    ref = wfdb.rdrecord(str(CINC / "E07500"))
    np.testing.assert_allclose(rec.signal, ref.p_signal.T)
    assert isinstance(rec.meta["age"], float) and rec.meta["sex"] in ("M", "F")
    assert len(rec.meta["dx"]) >= 1 and all(c.isdigit() for c in rec.meta["dx"])
    # the .mat and base name resolve to the same record
    assert eio.detect_format(CINC / "E07500.mat") == "wfdb"
    np.testing.assert_array_equal(eio.read(CINC / "E07500.mat").signal, rec.signal)


def test_wfdb_format_212(tmp_path):
    rec = eio.read(MITDB)
    assert rec.fs == 360 and rec.leads[0] == "II"
    assert 0.5 < np.ptp(rec.signal[0]) < 5


@pytest.mark.parametrize("fmt", ["wfdb", "edf", "bdf", "npz"])
def test_round_trip_is_exact_to_format_resolution(cinc_rec, tmp_path, fmt):
    out = eio.write(cinc_rec, tmp_path / f"x.{ 'hea' if fmt == 'wfdb' else fmt}", fmt)
    back = eio.read(out)
    assert back.leads == cinc_rec.leads and back.fs == cinc_rec.fs
    assert back.signal.shape == cinc_rec.signal.shape
    x = cinc_rec.signal
    if fmt == "npz":
        step = 0.0
    elif fmt == "wfdb":
        gain = np.floor(32000.0 / np.abs(x).max())
        step = 1.0 / gain
    else:  # EDF 16-bit / BDF 24-bit over each channel's (rounded-out) range
        levels = 65535 if fmt == "edf" else 16777215
        step = ((np.ceil(x.max(1) * 1000) - np.floor(x.min(1) * 1000)) / 1000 / levels)[:, None]
    err = np.abs(back.signal - x)
    assert np.all(err <= step / 2 + 1e-9), f"max error {err.max()} vs half step {np.max(step) / 2}"
    if fmt in ("wfdb", "npz"):
        assert back.meta["age"] == cinc_rec.meta["age"] and back.meta["sex"] == cinc_rec.meta["sex"]


def test_edf_written_by_pyedflib_with_uv_units_and_extra_channels(tmp_path):
    import pyedflib

    fs, n = 250, 2500
    t = np.arange(n) / fs
    lead_i = 0.8 * np.sin(2 * np.pi * 1.2 * t)
    lead_ii = 1.1 * np.cos(2 * np.pi * 1.2 * t)
    path = tmp_path / "holter.edf"
    w = pyedflib.EdfWriter(str(path), 3, file_type=pyedflib.FILETYPE_EDFPLUS)
    hdr = lambda label, dim, lo, hi: {"label": label, "dimension": dim, "sample_frequency": fs,  # noqa: E731
                                      "physical_min": lo, "physical_max": hi, "digital_min": -32768,
                                      "digital_max": 32767, "transducer": "", "prefilter": ""}
    w.setSignalHeaders([hdr("ECG I", "uV", -2000, 2000), hdr("ECG II", "uV", -2000, 2000), hdr("SpO2", "%", 0, 100)])
    w.setPatientCode("P-17")
    w.setSex(0)
    w.writeSamples([lead_i * 1000, lead_ii * 1000, np.full(n, 97.0)])
    w.close()
    rec = eio.read(path)
    # the one derived-lead policy: III, aVR, aVL, aVF computed from I and II for every format
    assert rec.leads == ("I", "II", "III", "aVR", "aVL", "aVF") and rec.fs == fs
    assert rec.meta["derived_leads"] == ("III", "aVR", "aVL", "aVF")
    step = 4000 / 65535 / 1000
    np.testing.assert_allclose(rec.lead("I"), lead_i, atol=step)
    np.testing.assert_allclose(rec.lead("II"), lead_ii, atol=step)
    assert rec.meta["other_channels"] == ("SpO2 (%)",)
    assert rec.meta["patient_id"] == "P-17" and rec.meta["sex"] == "F"


def test_edf_numbered_ecg_channels_are_not_limb_leads(tmp_path):
    # polysomnography / Holter EDFs name electrodes 'ECG1', 'ECG2': channel numbers, not leads I and
    # II (they were read as I and II, and III, aVR, aVL, aVF were derived from them)
    import pyedflib

    path = tmp_path / "psg.edf"
    w = pyedflib.EdfWriter(str(path), 2, file_type=pyedflib.FILETYPE_EDFPLUS)
    w.setSignalHeaders([{"label": name, "dimension": "uV", "sample_frequency": 256, "physical_min": -2000.0,
                         "physical_max": 2000.0, "digital_min": -32768, "digital_max": 32767, "transducer": "",
                         "prefilter": ""} for name in ("ECG1", "ECG 2")])
    w.writeSamples([np.zeros(512), np.zeros(512)])
    w.close()
    rec = eio.read(path)
    assert rec.leads == ("ECG1", "ECG 2") and "derived_leads" not in rec.meta


@pytest.mark.parametrize("dim, peak", [("microV", 1.0), ("counts", None)])
def test_edf_lead_in_an_unrecognised_unit_is_not_read_as_mv(tmp_path, dim, peak):
    # a named lead whose physical dimension is not a known voltage unit was read as mV (1000 µV in
    # 'microV' came back as 1000 mV); now 'microV' is a voltage and 'counts' is not a lead signal
    import pyedflib

    path = tmp_path / "u.edf"
    w = pyedflib.EdfWriter(str(path), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    w.setSignalHeaders([{"label": "ECG II", "dimension": dim, "sample_frequency": 250, "physical_min": -2000.0,
                         "physical_max": 2000.0, "digital_min": -32768, "digital_max": 32767, "transducer": "",
                         "prefilter": ""}])
    w.writeSamples([np.full(500, 1000.0)])
    w.close()
    if peak is None:
        with pytest.raises(RecordReadError, match=r"ECG II \(counts\)"):
            eio.read(path)
    else:
        np.testing.assert_allclose(eio.read(path).lead("II"), peak, atol=1e-4)


def test_npy_needs_fs_and_reads_batches(tmp_path, cinc_rec):
    np.save(tmp_path / "one.npy", cinc_rec.signal.T.astype(np.float32))  # (samples, leads)
    with pytest.raises(RecordReadError, match="sampling rate unknown"):
        eio.read(tmp_path / "one.npy")
    rec = eio.read(tmp_path / "one.npy", fs=500)
    assert rec.leads == STANDARD_12 and rec.meta["leads_assumed"] == "standard"
    np.testing.assert_allclose(rec.signal, cinc_rec.signal, atol=1e-6)
    np.save(tmp_path / "batch.npy", np.stack([cinc_rec.signal] * 3))
    recs = list(eio.iter_read(tmp_path / "batch.npy", fs=500))
    assert [r.id for r in recs] == ["batch#0", "batch#1", "batch#2"]
    with pytest.raises(RecordReadError, match="batch"):
        eio.read(tmp_path / "batch.npy", fs=500)
    assert eio.read(tmp_path / "batch.npy", fs=500, index=2).meta["index"] == 2


def test_npy_with_pickled_objects_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RecordReadError, match="objects"):
        eio.read(tmp_path / "obj.npy", fs=500)


def test_csv_with_header_units_and_time_column(tmp_path):
    fs = 250.0
    t = np.arange(1000) / fs
    i = np.sin(2 * np.pi * t)
    v1 = 0.5 * np.cos(2 * np.pi * t)
    lines = ["time,I (uV),V1 (uV)"] + [f"{a:.4f},{b * 1000:.3f},{c * 1000:.3f}" for a, b, c in zip(t, i, v1)]
    (tmp_path / "a.csv").write_text("\n".join(lines))
    rec = eio.read(tmp_path / "a.csv")
    assert rec.leads == ("I", "V1") and rec.fs == pytest.approx(fs)
    np.testing.assert_allclose(rec.lead("I"), i, atol=1e-6)
    tsv = "# sampling_rate=500\nI\tII\tIII\n" + "\n".join(f"{k}\t{2 * k}\t{k}" for k in range(10))
    (tmp_path / "b.tsv").write_text(tsv)
    rec = eio.read(tmp_path / "b.tsv")
    assert rec.fs == 500 and rec.leads[:3] == ("I", "II", "III") and rec.meta["derived_leads"] == ("aVR", "aVL", "aVF")
    np.testing.assert_array_equal(rec.lead("II"), 2 * np.arange(10))
    (tmp_path / "c.csv").write_text("I,II\n1,2\n3,4\n")
    with pytest.raises(RecordReadError, match="fs="):
        eio.read(tmp_path / "c.csv")
    assert eio.read(tmp_path / "c.csv", fs=100).fs == 100


def test_csv_rate_in_a_json_comment_header_and_fs_given_over_the_comment(tmp_path):
    # OpenSignals (BITalino) text exports: '# {"...": {"sampling rate": 1000, "label": ...}}';
    # the comma after 1000 separates JSON items (it was read as part of the number and refused)
    head = '# OpenSignals Text File Format\n# {"20:16": {"sampling rate": 1000, "resolution": [4, 10]}}\n# EndOfHeader\n'
    (tmp_path / "os.txt").write_text(head + "I\tII\t\n" + "".join(f"{k}\t{2 * k}\t\n" for k in range(10)))
    rec = eio.read(tmp_path / "os.txt", format="csv")
    assert rec.fs == 1000 and rec.signal.shape[1] == 10
    np.testing.assert_array_equal(rec.lead("II"), 2 * np.arange(10))
    # a decimal comma is still refused; fs= given by the caller is used without reading the comment
    (tmp_path / "dc.csv").write_text("# fs=1,5\nI,II\n1,2\n3,4\n")
    with pytest.raises(RecordReadError, match="not a number"):
        eio.read(tmp_path / "dc.csv")
    assert eio.read(tmp_path / "dc.csv", fs=250).fs == 250


def test_hdf5_code15_layout_yields_many_recordings(tmp_path, cinc_rec):
    import h5py

    x = np.stack([cinc_rec.signal[:, :4096].T * k for k in (1, 2, 3)]).astype(np.float32)  # (3, 4096, 12)
    path = tmp_path / "exams_part0.hdf5"
    with h5py.File(path, "w") as f:
        f["tracings"] = x
        f["exam_id"] = np.array([101, 102, 103])
    assert eio.detect_format(path) == "hdf5"
    recs = list(eio.iter_read(path))
    assert [r.id for r in recs] == ["101", "102", "103"]
    for k, r in enumerate(recs):
        assert r.fs == 400 and r.leads == STANDARD_12 and r.signal.shape == (12, 4096)
        np.testing.assert_allclose(r.signal, x[k].T, rtol=1e-6)
    assert "CODE-15" in recs[0].meta["fs_from_known_layout"]
    with h5py.File(tmp_path / "other.h5", "w") as f:
        d = f.create_dataset("ecg/signal", data=cinc_rec.signal)
        d.attrs["fs"] = 500.0
        d.attrs["leads"] = list(STANDARD_12)
    rec = eio.read(tmp_path / "other.h5")
    np.testing.assert_array_equal(rec.signal, cinc_rec.signal)


def test_npz_metadata_survives_round_trip(tmp_path, cinc_rec):
    out = eio.write(cinc_rec.replace(meta={**cinc_rec.meta, "statements": ("sinus rhythm",)}), tmp_path / "r.npz", "npz")
    back = eio.read(out)
    assert back.meta["statements"] == ["sinus rhythm"]
    with np.load(out) as z:
        assert json.loads(str(z["meta_json"]))["dx"] == list(cinc_rec.meta["dx"])


def test_write_refuses_unknown_format(cinc_rec, tmp_path):
    with pytest.raises(ValueError, match="wfdb, npz, edf"):
        eio.write(cinc_rec, tmp_path / "x.xyz")


def test_find_records_expands_every_format(tmp_path, cinc_rec):
    import shutil

    shutil.copy(CINC / "E07500.hea", tmp_path)
    shutil.copy(CINC / "E07500.mat", tmp_path)
    eio.write(cinc_rec, tmp_path / "sub" / "x.npz", "npz")
    eio.write(cinc_rec, tmp_path / "sub" / "y.edf", "edf")
    vendor = TESTS / "formats"
    for f in ("muse_xml/musePHI_muse_ecg1.xml", "dicom/ecgtoolkit_Example.dcm", "scp_ecg/ecgtoolkit_Example.scp"):
        shutil.copy(vendor / f, tmp_path / "sub")
    (tmp_path / "sub" / "labels.csv").write_text("record,label\nE07500,AF\n")  # a label table, not an ECG
    (tmp_path / "sub" / "ecg.csv").write_text("I,II\n1,2\n")
    (tmp_path / "sub" / "other.xml").write_text("<config/>")
    with pytest.warns(UserWarning) as said:
        found = [p.name for p in eio.find_records([tmp_path])]
    assert found == ["E07500.hea", "ecg.csv", "ecgtoolkit_Example.dcm", "ecgtoolkit_Example.scp",
                     "musePHI_muse_ecg1.xml", "x.npz", "y.edf"]
    # the XML/CSV files not taken are named (an ECG export of an unknown dialect must not vanish unsaid)
    assert [str(w.message) for w in said] == [
        f"{tmp_path}: 2 XML/CSV file(s) passed over, not taken for ECG recordings (an XML of no known ECG dialect, a "
        "CSV without lead-like column names): sub/labels.csv, sub/other.xml; give a file by name to read it as one "
        "(its error then says why it cannot be)."]
    # .mat given explicitly maps to its header; duplicates collapse
    assert eio.find_records([tmp_path / "E07500.mat", tmp_path / "E07500.hea"]) == [tmp_path / "E07500.hea"]


def test_find_records_walks_as_rglob_did(tmp_path):
    """The folder walk (one scandir a folder) gives what ``sorted(rglob("*"))`` + ``is_file`` +
    ``resolve`` gave: the same files in the same order (parts order: "a/x" before "a-1/x"), a
    symlinked folder not entered, a link to a file kept, a broken link and a .dat left out, and a
    file reached twice (folder and file given) once."""
    import os

    from ecgfounder.io.detect import _is_record_file

    for rel in ("a/x.hea", "a-1/x.hea", "a/b/y.edf", "a b/z.npz", "A/w.hea", ".hidden/v.hea", "a/x.dat", "top.edf"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "o.hea").write_bytes(b"")
    os.symlink(outside, tmp_path / "linked-folder")  # not entered (rglob does not follow it)
    os.symlink(tmp_path / "a" / "x.hea", tmp_path / "alias.hea")  # a link to a file: kept, once
    os.symlink(tmp_path / "gone.hea", tmp_path / "broken.hea")

    def reference(root):  # what find_records did before the walk
        out, seen = [], set()
        for q in sorted(q for q in root.rglob("*") if q.is_file() and _is_record_file(q)):
            key = q.resolve() if q.exists() else q
            if key not in seen:
                seen.add(key)
                out.append(q)
        return out

    got = eio.find_records([tmp_path])
    assert got == reference(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in got] == [
        ".hidden/v.hea", "A/w.hea", "a/b/y.edf", "a/x.hea", "a b/z.npz", "a-1/x.hea", "top.edf"]
    assert eio.find_records([tmp_path / "a", tmp_path / "a" / "x.hea", tmp_path / "alias.hea"]) == [
        tmp_path / "a" / "b" / "y.edf", tmp_path / "a" / "x.hea"]
    rel = Path(os.path.relpath(tmp_path))  # a relative folder gives relative paths, as before
    assert eio.find_records([rel]) == [rel / p.relative_to(tmp_path) for p in got]


def test_forced_format_and_unknown_format_name(tmp_path):
    src = TESTS / "formats" / "scp_ecg" / "ecgtoolkit_Example.scp"
    blob = tmp_path / "record.bin"
    blob.write_bytes(src.read_bytes())
    assert eio.detect_format(blob) == "scp"  # found by content
    assert eio.read(blob, format="SCP-ECG").signal.shape == (12, 5000)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(RecordReadError, match="unknown ECG file type"):
        eio.read(junk)
    with pytest.raises(ValueError, match="choose one of"):
        eio.read(blob, format="mfer")  # a real format this package does not read
