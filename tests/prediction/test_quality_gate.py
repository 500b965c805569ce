"""Signal quality in prediction: the 'quality' column, the skip gate, per-lead detail, and
calibrated probabilities from the calibration the weights carry."""

from __future__ import annotations

import numpy as np
import pytest

import ecgfounder
from ecgfounder.cli import main
from ecgfounder.labels import load_labels
from ecgfounder.prediction import predict


def _records(data_dir, tmp_path):
    """Three good real records and one with V3 zeroed and one with LA/RA swapped (as .npz)."""
    good = [data_dir / "cinc2021" / f"{n}.hea" for n in ("HR06000", "HR06001", "E07501")]
    rec = ecgfounder.read(good[0])
    i = rec.leads.index
    zero = rec.signal.copy()
    zero[i("V3")] = 0.0
    s = rec.signal
    swap = s.copy()
    swap[i("I")], swap[i("II")], swap[i("III")] = -s[i("I")], s[i("III")], s[i("II")]
    swap[i("aVR")], swap[i("aVL")] = s[i("aVL")], s[i("aVR")]
    bad = []
    for name, sig in (("zeroV3", zero), ("swapped", swap)):
        f = tmp_path / f"{name}.npz"
        np.savez(f, signal=sig, fs=rec.fs, leads=np.array(rec.leads))
        bad.append(f)
    return good, bad


def test_quality_column_warn_gate_predicts_every_record(tiny12, data_dir, tmp_path):
    good, bad = _records(data_dir, tmp_path)
    df = predict(good + bad, tiny12, quality_detail=True).set_index("record")
    assert len(df) == 5
    assert (df.loc[[p.stem for p in good], "quality"] == "good").all()
    assert df.loc["zeroV3", "quality"] == "flat:V3"
    assert "reversal:LA-RA" in df.loc["swapped", "quality"]
    assert "V3:flat" in df.loc["zeroV3", "quality_leads"] and "I:good" in df.loc["zeroV3", "quality_leads"]


def test_skip_gate_reports_bad_records_as_failures(tiny12, data_dir, tmp_path):
    good, bad = _records(data_dir, tmp_path)
    with pytest.warns(UserWarning, match="quality gate"):
        df = predict(good + bad, tiny12, quality="skip")
    assert sorted(df["record"]) == sorted(p.stem for p in good)
    failed = dict(df.attrs["failures"])
    assert set(failed) == {str(p) for p in bad}
    assert "flat:V3" in failed[str(bad[0])]


def test_skip_gate_judges_the_leads_the_model_reads(tiny1, data_dir, tmp_path):
    """A lead-I model lost a 12-lead record to the skip gate for a flat V3 it never reads; the quality
    column still shows every lead's flags, and what concerns lead I (LA/RA swap) still stops it."""
    good, (zero, swapped) = _records(data_dir, tmp_path)
    with pytest.warns(UserWarning, match="quality gate"):
        df = predict([good[0], zero, swapped], tiny1, quality="skip")
    assert sorted(df["record"]) == sorted([good[0].stem, "zeroV3"])
    assert df.set_index("record").loc["zeroV3", "quality"] == "flat:V3"
    assert set(dict(df.attrs["failures"])) == {str(swapped)}
    # fed lead V3 in place of I (lead=), the flat V3 stops it
    with pytest.warns(UserWarning, match="quality gate"):
        df = predict([zero], tiny1, quality="skip", lead="V3")
    assert df.empty


def test_off_gate_leaves_quality_empty_and_scores_unchanged(tiny12, data_dir, tmp_path):
    good, _ = _records(data_dir, tmp_path)
    on, off = predict(good, tiny12), predict(good, tiny12, quality="off")
    assert (off["quality"] == "").all()
    labels = list(load_labels())
    np.testing.assert_array_equal(on[labels].to_numpy(), off[labels].to_numpy())
    with pytest.raises(ValueError, match="quality gate 'maybe' is not one of warn, skip, off"):
        predict(good, tiny12, quality="maybe")


def test_cli_quality_gate_skip_exit_code_and_rows(tiny_ckpt12, data_dir, tmp_path, capsys):
    good, bad = _records(data_dir, tmp_path)
    out = tmp_path / "p.csv"
    code = main(["predict", *map(str, good + bad), "--checkpoint", str(tiny_ckpt12), "-o", str(out),
                 "--quality-gate", "skip", "--no-progress", "--precision", "fp32"])
    assert code == 1
    import pandas as pd

    table = pd.read_csv(out)
    assert len(table) == 3 and (table["quality"] == "good").all()
    err = capsys.readouterr().err
    assert "zeroV3.npz" in err and "not predicted: signal quality flat:V3" in err


def test_calibrated_probabilities_come_from_the_weights(tiny12, data_dir, tmp_path):
    from ecgfounder.explain.calibration import Calibration, attach_calibration

    good, _ = _records(data_dir, tmp_path)
    labels = list(load_labels())
    with pytest.raises(ValueError, match="carry no calibration"):
        predict(good, tiny12, calibrated=True)
    import copy

    model = copy.deepcopy(tiny12)
    temps = tuple([2.0] * len(labels))
    attach_calibration(model, Calibration(labels=tuple(labels), method="temperature", temperatures=temps,
                                          task="multilabel", fitted_on={"split": "val"}))
    raw = predict(good, model)[labels].to_numpy()
    cal = predict(good, model, calibrated=True)[labels].to_numpy()
    logit = np.log(raw / (1 - raw))
    np.testing.assert_allclose(cal, 1 / (1 + np.exp(-logit / 2.0)), atol=1e-9)


def test_calibrated_columns_a_calibration_leaves_unchanged_are_said(tiny12, data_dir, tmp_path):
    """Columns of labels fitted on too few positives are the model's scores: predict --calibrated gave
    them with the others, as calibrated, without a word (the report marks them)."""
    import copy

    from ecgfounder.explain.calibration import Calibration, attach_calibration

    good, _ = _records(data_dir, tmp_path)
    labels = list(load_labels())
    model = copy.deepcopy(tiny12)
    attach_calibration(model, Calibration(labels=tuple(labels), method="temperature", temperatures=(1.0,) * 2 + (2.0,) * 148,
                                          fitted_on={"split": "val", "unfitted": labels[:2]}))
    with pytest.warns(UserWarning, match=r"leaves 2 of 150 labels as the model scores them .*not calibrated: "):
        predict(good[:1], model, calibrated=True)
