"""The fast reader of simple 16-bit WFDB records returns exactly what wfdb returns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgfounder.io import read
from ecgfounder.io import wfdb as wfdb_reader

DATA = Path(__file__).resolve().parents[1] / "data"


def _records():
    return sorted((DATA / "cinc2021").glob("*.hea")) + sorted((DATA / "train" / "cpsc2021").glob("*.hea"))


def _stored(rec, names):
    """The rows of the leads the file stores (the reading policy may add derived limb leads)."""
    from ecgfounder.signal.leads import canonical_lead

    return rec.signal[[rec.leads.index(canonical_lead(n)) for n in names]]


def _fast_path_taken(hea: Path) -> bool:
    lines, comments = wfdb_reader._header_lines(hea.read_text(encoding="latin-1"))
    n_sig, sig_len, files, fmts, offsets = wfdb_reader._header_layout(lines)
    fs = wfdb_reader._header_fs(hea, lines)
    return len(set(files)) == 1 and set(fmts) == {"16"} and \
        wfdb_reader._read_simple_16(hea, lines, comments, fs, n_sig, sig_len, int(offsets[0] or 0)) is not None


@pytest.mark.parametrize("hea", _records(), ids=lambda p: p.stem)
def test_fast_read_equals_wfdb(hea):
    assert _fast_path_taken(hea)
    rec = read(hea)
    ref = wfdb.rdrecord(str(hea.with_suffix("")))
    assert np.array_equal(_stored(rec, ref.sig_name), ref.p_signal.T, equal_nan=True)
    assert rec.fs == ref.fs and rec.id == ref.record_name
    assert rec.signal.flags.c_contiguous  # lead-major rows: later per-lead passes read contiguous memory
    assert len(rec.leads) == ref.n_sig + len(rec.meta.get("derived_leads", ()))


def test_invalid_samples_become_nan_and_units_convert(tmp_path):
    sig = np.random.default_rng(0).standard_normal((1000, 2)) * 500.0  # microvolts
    sig[10:20, 1] = np.nan
    wfdb.wrsamp("uv", fs=250, units=["uV", "uV"], sig_name=["I", "II"], p_signal=sig, fmt=["16", "16"],
                write_dir=str(tmp_path), comments=["Age: 61", "Sex: F"])
    hea = tmp_path / "uv.hea"
    assert _fast_path_taken(hea)
    rec = read(hea)
    ref = wfdb.rdrecord(str(tmp_path / "uv")).p_signal.T * 1e-3  # the reader scales uV by 1e-3
    np.testing.assert_array_equal(_stored(rec, ["I", "II"]), ref)
    assert np.isnan(rec.lead("II")[10:20]).all() and rec.meta["age"] == 61 and rec.meta["sex"] == "F"
    assert rec.meta["non_finite_samples"] >= 10


def test_other_layouts_go_through_wfdb():
    for hea in (DATA / "mitdb" / "100.hea", DATA / "ptbdb" / "s0010_re.hea"):  # format 212; two files
        rec = read(hea)
        ref = wfdb.rdrecord(str(hea.with_suffix("")))
        assert np.array_equal(rec.signal, ref.p_signal.T)


@pytest.mark.parametrize("name", ["/tmp/elsewhere.dat", "../outside.dat", "sub/inner.dat", "..\\\\win.dat", "C:x.dat"])
def test_header_naming_a_file_outside_its_folder_is_refused(tmp_path, name):
    """A header is untrusted input (uploads to a service): its signal file must lie beside it, or
    any readable file on the machine would come back as a signal."""
    from ecgfounder.errors import RecordReadError

    inner = tmp_path / "in"
    inner.mkdir()
    secret = np.arange(2000, dtype="<i2")
    for target in (tmp_path / "outside.dat", inner / "sub" / "inner.dat", tmp_path / "elsewhere.dat"):
        target.parent.mkdir(exist_ok=True)
        secret.tofile(target)
    name = name.replace("/tmp/elsewhere.dat", str(tmp_path / "elsewhere.dat"))
    lines = ["x 2 500 1000"] + [f"{name} 16 200/mV 16 0 0 0 0 {lead}" for lead in ("I", "II")]
    (inner / "x.hea").write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordReadError, match="not a plain file name"):
        read(inner / "x.hea")


def test_multisegment_header_naming_a_segment_outside_is_refused(tmp_path):
    from ecgfounder.errors import RecordReadError

    sig = np.random.default_rng(1).standard_normal((500, 1))
    wfdb.wrsamp("seg", fs=250, units=["mV"], sig_name=["I"], p_signal=sig, fmt=["16"], write_dir=str(tmp_path))
    inner = tmp_path / "in"
    inner.mkdir()
    (inner / "multi.hea").write_text("multi/2 1 250 1000\n../seg 500\n../seg 500\n")
    with pytest.raises(RecordReadError, match="corrupt WFDB header"):  # wfdb's segment syntax has no paths
        read(inner / "multi.hea")
