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
