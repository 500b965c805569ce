"""What a reader changed or passed over is said in the recording's ``meta`` (and, where data are
lost or chosen, in a warning): a modified lead read as the standard one (WFDB's MLII), a DICOM
median-beat group cut short by a truncated file, a lead stored twice, a stated age and a birth date
that disagree."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio

FORMATS = Path(__file__).resolve().parent.parent / "data" / "formats"


def _quiet_read(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = eio.read(path, **kw)
    return rec, [str(w.message) for w in caught]


def test_a_modified_lead_read_as_the_standard_one_is_named_in_meta(tmp_path):
    """MIT-BIH's MLII (modified lead II, torso electrodes) is read as II: nothing said so."""
    counts = np.random.default_rng(0).integers(-500, 500, size=(720, 3), dtype="<i2")
    counts.tofile(tmp_path / "rec.dat")  # (a WFDB format-16 record, written as wfdb.wrsamp writes it)
    (tmp_path / "rec.hea").write_text("rec 3 360 720\n" + "".join(
        f"rec.dat 16 200/mV 16 0 0 0 0 {name}\n" for name in ("MLII", "V5", "aVR")))
    rec, _ = _quiet_read(tmp_path / "rec.hea")
    assert rec.leads[:2] == ("II", "V5") and np.array_equal(rec.lead("II"), counts[:, 0] / 200)
    assert rec.meta["lead_names_from"] == {"II": "MLII"}  # (V5, aVR: the file's own names)
    (tmp_path / "rec.hea").write_text("rec 3 360 720\n" + "".join(
        f"rec.dat 16 200/mV 16 0 0 0 0 {name}\n" for name in ("II", "v5", "avr")))
    assert "lead_names_from" not in _quiet_read(tmp_path / "rec.hea")[0].meta  # a spelling is no rename
