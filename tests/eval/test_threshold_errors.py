"""A thresholds file that is missing or unreadable: a package error of the old builtin kind, naming
the file and the fix."""

from __future__ import annotations

import pytest

from ecgfounder.errors import ECGFounderError
from ecgfounder.eval.errors import EvaluationError
from ecgfounder.eval.thresholds import ThresholdsNotFoundError, load_thresholds


def test_missing_thresholds_file_is_a_file_not_found_ecgfounder_error(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError) as err:
        load_thresholds(path)
    assert isinstance(err.value, ThresholdsNotFoundError) and isinstance(err.value, ECGFounderError)
    assert isinstance(err.value, OSError) and err.value.filename == str(path)
    msg = str(err.value)
    assert f"thresholds file {path} not found" in msg and "save_thresholds()" in msg and "--out DIR" in msg
    with pytest.raises(ThresholdsNotFoundError, match="is a folder"):
        load_thresholds(tmp_path)


@pytest.mark.parametrize("text, words", [
    ("", "not a readable thresholds CSV"),
    ("label,threshold\nAF,0.5\nSB,high\n", "threshold 'high' of label 'SB' is not a number"),
])
def test_unreadable_thresholds_file_names_the_file_and_the_cell(tmp_path, text, words):
    path = tmp_path / "thr.csv"
    path.write_text(text)
    with pytest.raises(EvaluationError, match=words) as err:
        load_thresholds(path)
    assert str(path) in str(err.value) and isinstance(err.value, ValueError)


def test_nan_and_empty_cells_are_no_threshold(tmp_path):
    path = tmp_path / "thr.csv"
    path.write_text("label,threshold\nAF,0.25\nSB,\nST,nan\n")
    ser = load_thresholds(path)
    assert ser["AF"] == 0.25 and ser[["SB", "ST"]].isna().all()


def test_not_found_error_survives_pickling(tmp_path):
    import pickle

    err = pickle.loads(pickle.dumps(ThresholdsNotFoundError(tmp_path / "x.csv")))
    assert str(err) == str(ThresholdsNotFoundError(tmp_path / "x.csv")) and err.filename == str(tmp_path / "x.csv")
