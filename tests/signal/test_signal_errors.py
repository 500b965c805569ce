"""Bad input to the signal functions: an ECGFounderError that is still a ValueError, naming the bad
value and the library argument that fixes it (with the command line's form beside it where a
per-record message reaches the command line unchanged)."""

from __future__ import annotations

import numpy as np
import pytest

from ecgfounder.errors import ECGFounderError, LeadError, RecordReadError
from ecgfounder.signal import filters
from ecgfounder.signal.errors import SignalError
from ecgfounder.signal.leads import STANDARD_12, select_leads
from ecgfounder.signal.preprocess import PreprocessContract, lead_set, prepare

X = np.sin(np.arange(5000) / 30.0)


@pytest.mark.parametrize("call, words", [
    (lambda: filters.notch(X, 100.0, f0=60.0), ("60.0 Hz", "fs=100.0", "f0 below fs/2")),
    (lambda: filters.bandpass(X, 500.0, low=50.0, high=40.0), ("low=50.0", "high=40.0", "order >= 1")),
    (lambda: filters.bandpass(X, 500.0, order=0), ("order=0",)),
    (lambda: filters.filtfilt_ba(np.array([1.0, 0.0]), np.array([1.0, -0.5]), X[:3]), ("3 samples", "longer record")),
    (lambda: filters.running_median(X, 4), ("k=4", "odd k")),
    (lambda: PreprocessContract(mode="fast"), ("mode='fast'", "published, zscore, none")),
    (lambda: PreprocessContract(fs=0), ("fs=0.0", "n_samples=5000")),
    (lambda: PreprocessContract(leads=()), ("leads=()",)),
    (lambda: PreprocessContract(baseline_window_s=5.0), ("baseline_window_s=5.0",)),
    (lambda: PreprocessContract.from_dict({"hpf": 1}), ("['hpf']", "remove the others")),
    (lambda: prepare(np.zeros((2, 3, 4)), 500.0, ["I", "II"]), ("(2, 3, 4)", "one row per lead")),
    (lambda: prepare(np.zeros((2, 5000)), 500.0, ["I"]), ("2 signal rows but 1 lead names", "leads=['I']")),
    # samples x leads: the fix is named (was: only "give one name per row")
    (lambda: prepare(np.zeros((5000, 12)), 500.0, STANDARD_12), ("5000 signal rows but 12", "pass signal.T")),
    # text samples: was numpy's bare ValueError
    (lambda: prepare(np.array([["0.1", "x"]] * 12), 500.0, STANDARD_12), ("not numbers", "'x'", "numeric array")),
    # a third band edge was dropped silently
    (lambda: PreprocessContract(band_hz=(0.5, 40.0, 3.0)), ("band_hz=[0.5, 40.0, 3.0]", "two edges", "(0.67, 40.0)")),
    # was ZeroDivisionError
    (lambda: filters.resample(X, 0.0, 500.0), ("fs=0.0", "fs_new=500.0", "true rate")),
])
def test_signal_errors_name_the_value_and_the_fix(call, words):
    with pytest.raises(SignalError) as err:
        call()
    assert isinstance(err.value, ECGFounderError) and isinstance(err.value, ValueError)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_no_default_lead_set_is_a_lead_error():
    with pytest.raises(LeadError, match=r"no default lead set for 3 leads \(known: 1, 12\).*leads=\("):
        lead_set(3)


def test_record_rate_and_length_name_the_library_argument_and_the_flag():
    with pytest.raises(RecordReadError, match=r"fs=5 Hz .*fs=\.\.\. \(CLI: --fs\)"):
        prepare(np.zeros((12, 5000)), 5, STANDARD_12, source="r.npy")
    with pytest.raises(RecordReadError, match=r"too long .*max_duration=SECONDS \(CLI: --max-duration S\)"):
        prepare(np.zeros((12, 5000)), 500.0, STANDARD_12, source="r.npy",
                contract=PreprocessContract(fs=5e7, n_samples=10, mode="none"))


def test_lead_messages_name_lead_and_fill_missing_for_the_library_and_the_cli():
    x = np.zeros((3, 5000))
    with pytest.raises(LeadError) as err:  # the lead asked for is not recorded
        select_leads(x, ["II", "V1", "V2"], ["I"], source="r.hea", substitute="V5")
    msg = str(err.value)
    assert "lead='V5' (CLI: --lead V5) is not in the recording" in msg and "II, V1, V2" in msg
    with pytest.raises(LeadError) as err:  # 12-lead model, three leads: no lead I
        select_leads(x, ["II", "V1", "V2"], STANDARD_12, source="r.hea")
    msg = str(err.value)
    assert "fill_missing=True (CLI: --fill-missing)" in msg
    assert "model='1-lead' (CLI: --weights 1-lead), with lead='II' (CLI: --lead II) in place of lead I" in msg
    with pytest.raises(LeadError) as err:  # lead I recorded: the 1-lead weights need no lead=
        select_leads(x, ["I", "V1", "V2"], STANDARD_12, source="r.hea")
    assert "model='1-lead' (CLI: --weights 1-lead)." in str(err.value) and "lead=" not in str(err.value)


def test_contract_lead_given_as_one_string_is_one_lead():
    assert PreprocessContract(leads="II").leads == ("II",)  # was ('I', 'I'): the string's characters
    assert PreprocessContract(leads="avf").leads == ("aVF",)


def test_one_lead_model_without_its_lead_names_a_lead_to_feed():
    with pytest.raises(LeadError) as err:
        select_leads(np.zeros((2, 100)), ["V2", "II"], ["I"], source="r.hea")
    assert "missing lead(s) I (the recording has V2, II" in str(err.value)
    assert "lead='II' (CLI: --lead II)" in str(err.value)
