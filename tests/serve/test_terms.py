"""Library messages in a request's terms (query parameters, JSON fields, tool arguments)."""

from __future__ import annotations

import pytest

from ecgfounder.serve.terms import Terms

QUERY = Terms("the query parameter", frozenset({"fs", "leads", "format", "units"}), csv_lists=True)
ARGS = Terms("the argument", frozenset({"fs", "leads"}))


@pytest.mark.parametrize("message, query, args", [
    ("a.csv: sampling rate unknown; pass fs=... (CLI: --fs)",
     "a.csv: sampling rate unknown; pass the query parameter fs=...",
     "a.csv: sampling rate unknown; pass the argument fs=..."),
    ("a.npy: 3 channels and no lead names; pass leads=[...] (CLI: --leads I,II,...)",
     "a.npy: 3 channels and no lead names; pass the query parameter leads=I,II,...",
     'a.npy: 3 channels and no lead names; pass the argument leads=["I", "II", ...]'),
    ("a.npy: 1 channel and no lead name; pass leads=['II'] (CLI: --leads II)",
     "a.npy: 1 channel and no lead name; pass the query parameter leads=II",
     'a.npy: 1 channel and no lead name; pass the argument leads=["II"]'),
    # a placeholder asks for a value, with or without the command line's flag
    ("x: rate 10 Hz is implausible; give the true rate as fs=...",
     "x: rate 10 Hz is implausible; give the true rate as the query parameter fs=...",
     "x: rate 10 Hz is implausible; give the true rate as the argument fs=..."),
    ("x: too long; read part of it with max_duration=SECONDS", "x: too long.", "x: too long."),
    # a value described, not asked for, is left as it is
    ("a.csv: units='furlong' is not a voltage unit; choose mV, uV, V or nV.",) * 3,
    # hints a request cannot follow are left out (never the statement itself)
    ("x: missing lead V1. fill_missing=True (CLI: --fill-missing) zero-fills it. Use model='1-lead' (CLI: --weights 1-lead).",
     "x: missing lead V1.", "x: missing lead V1."),
    ("x.hea: 9 values, above the limit; pass max_duration=SECONDS to read the first part",
     "x.hea: 9 values, above the limit.", "x.hea: 9 values, above the limit."),
    ("a.zip: archive holds several recordings; use ecgfounder.io.iter_read() (the CLI reads every one)",
     "a.zip: archive holds several recordings.", "a.zip: archive holds several recordings."),
    ("x: a sample of 1e+308 mV; check the file's gain and units (units=)",
     "x: a sample of 1e+308 mV; check the file's gain and units (the query parameter units)",
     "x: a sample of 1e+308 mV; check the file's gain and units"),
    ("unknown type '.foo'; known: csv, wfdb. Pass format=... (CLI: --format) to force one.",
     "unknown type '.foo'; known: csv, wfdb. Pass the query parameter format=... to force one.",
     "unknown type '.foo'; known: csv, wfdb."),
])
def test_library_hints_in_request_terms(message, query, args):
    assert QUERY(message) == query
    assert ARGS(message) == args


def test_the_argument_at_fault_is_named_first():
    msg = "unknown format 'bogus'; choose one of csv, wfdb."
    assert QUERY(msg, "format") == "the query parameter format: " + msg
    assert ARGS(msg, "format") == msg  # not an argument of these requests
    assert QUERY("pass format='muse' (CLI: --format muse)") == "pass the query parameter format=muse"
    assert Terms("the argument", frozenset({"format"}))("pass format='muse'") == 'pass the argument format="muse"'
