"""Writing records as a hospital archive conversion would: every format read back by the package
and by the format's own library (wfdb, pyedflib, numpy) within the format's step, leads as
recorded (not the ones derived on reading), atomic files, and one-line refusals of what no file
can hold."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ecgfounder.errors import SetupError
from ecgfounder.io import read, write
from ecgfounder.recording import Recording

STD12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
META = {"patient_id": "P0042", "acquired": "2021-03-04T05:06:07", "sex": "F", "age": 55.0,
        "statements": ("sinus rhythm", "Confirmed by Doe, John")}
# the step of each format over a lead's range (max - min): WFDB format 16 / 65533 (one code is
# the invalid sample), EDF 16-bit / 65535, BDF 24-bit / 16777215, npz float64 (exact)
LEVELS = {"wfdb": 65533, "edf": 65535, "bdf": 16777215, "npz": None}


def _native(path: Path, fmt: str) -> tuple[list[str], float, np.ndarray, str]:
    """Leads, rate, signal (leads × samples) and unit as the format's own library reads them."""
    if fmt == "wfdb":
        import wfdb

        r = wfdb.rdrecord(str(path.with_suffix("")))
        return r.sig_name, float(r.fs), r.p_signal.T, r.units[0]
    if fmt in ("edf", "bdf"):
        import pyedflib

        with pyedflib.EdfReader(str(path)) as f:
            sig = np.array([f.readSignal(k) for k in range(f.signals_in_file)])
            labels = [x.strip() for x in f.getSignalLabels()]
            return labels, float(f.getSampleFrequency(0)), sig, f.getPhysicalDimension(0)
    with np.load(path) as z:
        return [str(x) for x in z["leads"]], float(z["fs"]), z["signal"], str(z["units"])


@pytest.mark.parametrize("fmt", list(LEVELS))
@pytest.mark.parametrize("leads,fs,seconds", [
    (("II",), 500.0, 10), (("I", "II"), 257.0, 10), (STD12, 1000.0, 10), (STD12 + ("X", "Y", "Z"), 500.0, 1),
    (("I", "II"), 500.0, 300),
])
def test_every_format_reads_back_in_the_package_and_its_own_library(tmp_path, fmt, leads, fs, seconds):
    n = int(fs * seconds)
    sig = np.random.default_rng(len(leads)).normal(size=(len(leads), n))
    sig[0, :2] = (20.0, -20.0)  # ±20 mV: the step is 40 mV / levels
    sig[-1, 30:33] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write(Recording(sig, fs, leads, META), tmp_path / f"r.{'hea' if fmt == 'wfdb' else fmt}", fmt)
        back = read(path)
    names, rate, got, unit = _native(path, fmt)
    assert names == list(leads) and rate == fs and got.shape == sig.shape and unit == "mV"
    assert back.stored_leads == leads and back.fs == fs and back.n_samples == n
    ok = np.isfinite(sig)
    half_step = 0.0 if LEVELS[fmt] is None else 0.5 * np.ptp(sig[ok]) / LEVELS[fmt] * 1.01
    for arr in (got, back.signal[: len(leads)]):
        assert np.max(np.abs(arr[ok] - sig[ok])) <= half_step
    if fmt in ("wfdb", "npz"):  # NaN is WFDB's invalid sample (and a float in npz)
        assert np.array_equal(np.isnan(got), ~ok)
    else:  # EDF has no missing-sample code: 0 mV, said
        assert np.all(np.abs(got[~ok]) <= half_step)
        assert any("no code for a missing sample" in str(w.message) for w in caught)
    assert {k: back.meta.get(k) for k in ("patient_id", "acquired", "sex", "age")} == \
        {k: META[k] for k in ("patient_id", "acquired", "sex", "age")}
    assert tuple(back.meta["statements"]) == META["statements"]


@pytest.mark.parametrize("fmt", list(LEVELS))
def test_the_leads_derived_on_reading_are_not_written(tmp_path, fmt):
    """A 2-lead record read gets III, aVR, aVL, aVF derived from I and II; converting it wrote six
    leads, read back as recorded ones (meta['derived_leads'] gone), three times the size."""
    sig = np.random.default_rng(0).normal(size=(2, 2500))
    two = read(write(Recording(sig, 500.0, ("I", "II"), {}), tmp_path / "two.npz"))
    assert two.leads == ("I", "II", "III", "aVR", "aVL", "aVF")
    path = write(two, tmp_path / f"c.{'hea' if fmt == 'wfdb' else fmt}", fmt)
    assert _native(path, fmt)[0] == ["I", "II"]
    again = read(path)
    assert again.leads == two.leads and again.meta["derived_leads"] == ("III", "aVR", "aVL", "aVF")


@pytest.mark.parametrize("fmt,suffix", [("wfdb", ".hea"), ("npz", ".npz"), ("edf", ".edf"), ("bdf", ".bdf")])
def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch, fmt, suffix):
    """The writers wrote in place: a full disk part way left a cut file under the name asked for,
    in place of the good file there before."""
    import importlib

    edf, wfdb_io, w = (importlib.import_module(f"ecgfounder.io.{m}") for m in ("edf", "wfdb", "write"))

    def half(rec, path, **kw):  # a writer that runs out of disk part way
        Path(path).with_suffix(".dat" if fmt == "wfdb" else suffix).write_bytes(b"half")
        raise OSError(28, "No space left on device", str(path))  # (naming the file it was writing)

    monkeypatch.setattr({"wfdb": wfdb_io, "npz": w, "edf": edf, "bdf": edf}[fmt],
                        {"wfdb": "write_wfdb", "npz": "write_npz"}.get(fmt, "write_edf"), half)
    for old in {f"r{suffix}", "r.dat" if fmt == "wfdb" else f"r{suffix}"}:
        (tmp_path / old).write_bytes(b"old")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OSError, match="No space") as err:
        write(Recording(np.zeros((1, 500)), 500.0, ("II",), {}), tmp_path / f"r{suffix}", fmt)
    assert err.value.filename == str(tmp_path / f"r{suffix}")  # the file asked for, not the private folder's
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half, no temporary left
    assert all(p.read_bytes() == b"old" for p in tmp_path.iterdir())


@pytest.mark.parametrize("fmt", ["wfdb", "npz", "edf"])
@pytest.mark.parametrize("shape,leads,said", [((2, 0), ("I", "II"), r"holds no samples \(shape \(2, 0\)"),
                                              ((2, 500), ("V1", "v1"), r"leads 'V1' and 'v1' are one lead")])
def test_what_no_file_can_hold_is_refused_before_writing(tmp_path, fmt, shape, leads, said):
    """0 samples: an npz no reader takes; a lead twice: read back as one (the other dropped).  (0
    leads: wfdb's and pyedflib's own errors, EDF leaving a file; no Recording of 0 leads is made now.)"""
    with pytest.raises(SetupError, match=said):
        write(Recording(np.zeros(shape), 500.0, leads, {}), tmp_path / f"r.{'hea' if fmt == 'wfdb' else fmt}", fmt)
    assert list(tmp_path.iterdir()) == []


def test_a_recording_of_no_lead_is_refused_where_it_is_made():
    """A Recording of 0 leads (made through the API; readers refuse such files) was assessed 'good'
    by the quality check, which found nothing wrong in no lead at all."""
    with pytest.raises(ValueError, match=r"Recording.signal has no leads \(shape \(0, 500\)\)"):
        Recording(np.zeros((0, 500)), 500.0, (), {})


def test_lead_names_a_format_cannot_hold(tmp_path):
    """WFDB refused a lead name with a tab or newline (wfdb's bare ValueError); EDF wrote 'Vü' as
    'VA' without a word (pyedflib's encoding): now '_' in both, EDF with a warning."""
    sig = np.random.default_rng(0).normal(size=(3, 1000))
    rec = Recording(sig, 500.0, ("I,II", "V\t1", "Vü"), {})
    assert read(write(rec, tmp_path / "w.hea")).leads[:3] == ("I,II", "V1", "Vü")  # V_1 read as V1
    with pytest.warns(UserWarning) as caught:
        path = write(rec, tmp_path / "e.edf")
    assert [str(w.message).split(": ", 1)[1] for w in caught] == [
        f"lead name {name!r} written as {label!r} (EDF: 16 ASCII characters)."
        for name, label in (("V\t1", "V_1"), ("Vü", "V_"))]
    assert _native(path, "edf")[0] == ["I,II", "V_1", "V_"]


def test_warnings_and_errors_name_the_file_asked_for(tmp_path):
    """The file is written under a temporary name first: what the writers say names the target."""
    sig = np.zeros((1, 2500))
    sig[0, 5] = np.nan
    with pytest.warns(UserWarning) as caught:
        write(Recording(sig, 250.0, ("II",), {}), tmp_path / "n.edf")
    assert [str(w.message).split(": ")[0] for w in caught] == [str(tmp_path / "n.edf")]
    with pytest.raises(SetupError, match=rf"^{tmp_path / 'a.b.hea'}: a WFDB record name"):
        write(Recording(sig, 250.0, ("II",), {}), tmp_path / "a.b.hea")
    assert list(tmp_path.iterdir()) == [tmp_path / "n.edf"]



def test_writes_in_threads_leave_the_warning_filters_as_they_were(tmp_path, monkeypatch):
    """Each write caught its writer's warnings with catch_warnings (process-wide): two overlapping in
    threads, the second to finish put back the first's recording state, and every later warning of
    the process went into a finished write's list, never shown."""
    import importlib
    import threading

    w = importlib.import_module("ecgfounder.io.write")
    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()
    real = w.write_npz

    def slow(rec, path):  # the first write waits (briefly) for the second to be inside its own
        if rec.meta["n"] == 1:
            a_inside.set()
            b_inside.wait(0.3)
        else:
            b_inside.set()
            a_done.wait(0.3)
        return real(rec, path)

    monkeypatch.setattr(w, "write_npz", slow)
    filters = list(warnings.filters)
    rec = lambda n: Recording(np.zeros((1, 500)), 500.0, ("II",), {"n": n})  # noqa: E731
    one = threading.Thread(target=lambda: (write(rec(1), tmp_path / "a.npz"), a_done.set()))
    one.start()
    a_inside.wait(1)
    two = threading.Thread(target=write, args=(rec(2), tmp_path / "b.npz"))
    two.start()
    one.join(), two.join()
    assert warnings.filters == filters
    assert (tmp_path / "a.npz").is_file() and (tmp_path / "b.npz").is_file()
