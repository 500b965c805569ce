"""Signal-format conformance: WFDB, EDF/EDF+/BDF, CSV, NumPy and HDF5 variants the sample files do
not cover, each written by the reference library (wfdb, pyedflib, numpy, h5py) or by hand from the
format's specification (WFDB header(5)/signal(5), EDF/EDF+), so that the millivolts are known, then
read with :func:`ecgfounder.io.read`: values in mV (to the format's resolution), rate, lead names,
duration; where the right answer is a refusal, a one-line :class:`RecordReadError` naming the file
and the reason."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pyedflib
import pytest
import wfdb

from ecgfounder.errors import RecordReadError
from ecgfounder.io import iter_read, read

NAMES = ["I", "II", "V1"]
L12 = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def _read(path, **kw):
    """``(recording, warning texts)`` of ``read(path)`` (no calibration-pulse trimming)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = read(path, trim_calibration=False, **kw)
    return rec, [str(w.message) for w in caught]


def _refused(path, *words, **kw) -> str:
    """The one-line refusal of ``path``, checked to name the file and to hold ``words``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RecordReadError) as err:
            read(path, **kw)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path)) and all(w in msg for w in words), msg
    return msg


def _stored(rec, names):
    return np.stack([rec.lead(n) for n in names])


# ------------------------------------------------------------------------------------------ WFDB
# digital range and invalid-sample value of each format (signal(5); wfdb-python's tables agree)
RANGE = {"8": (-2000, 2000), "16": (-32767, 32767), "24": (-2**23 + 1, 2**23 - 1), "32": (-2**31 + 1, 2**31 - 1),
         "61": (-32767, 32767), "80": (-127, 127), "160": (-32767, 32767), "212": (-2047, 2047),
         "310": (-511, 511), "311": (-511, 511), "508": (-127, 127), "516": (-32767, 32767),
         "524": (-2**23 + 1, 2**23 - 1)}
INVALID = {"16": -32768, "24": -2**23, "32": -2**31, "61": -32768, "80": -128, "160": -32768, "212": -2048,
           "310": -512, "311": -512, "508": -128, "516": -32768, "524": -2**23}


def _encode(fmt: str, d: np.ndarray) -> bytes:
    """Frames ``d`` (samples × signals, digital) as a WFDB signal file of format ``fmt``, written
    from signal(5) (independently of wfdb-python)."""
    d = np.asarray(d, dtype=np.int64)
    flat = d.reshape(-1)
    if fmt == "8":  # first differences, the first from the header's initial value (= d[0])
        return np.diff(np.vstack([d[:1], d]), axis=0).astype("i1").tobytes()
    if fmt in ("16", "32", "61"):
        return flat.astype({"16": "<i2", "32": "<i4", "61": ">i2"}[fmt]).tobytes()
    if fmt == "80":
        return (flat + 128).astype("u1").tobytes()
    if fmt == "160":
        return (flat + 32768).astype("<u2").tobytes()
    if fmt == "24":
        u = flat & 0xFFFFFF
        return np.stack([u & 255, (u >> 8) & 255, u >> 16], 1).astype("u1").tobytes()
    if fmt == "212":  # two 12-bit samples in 3 bytes; an odd last sample in 2
        u = np.append(flat & 0xFFF, np.zeros(flat.size % 2, dtype=np.int64))
        a, b = u[0::2], u[1::2]
        out = np.stack([a & 255, ((a >> 8) & 15) | (((b >> 8) & 15) << 4), b & 255], 1).astype("u1").tobytes()
        return out[: -(-flat.size * 3 // 2)]
    n = flat.size  # 310/311: three 10-bit samples in 4 bytes
    u = np.append(flat & 0x3FF, np.zeros(-n % 3, dtype=np.int64))
    a, b, c = u[0::3], u[1::3], u[2::3]
    if fmt == "310":  # in bits 1-10 of two 16-bit words, the third in their bits 11-15
        out = np.stack([(a << 1) | ((c & 31) << 11), (b << 1) | ((c >> 5) << 11)], 1).astype("<u2").tobytes()
        return out[: (-(-n * 4 // 3) if n % 3 != 2 else -(-n * 4 // 12) * 4)]
    assert fmt == "311"  # in bits 0-9, 10-19, 20-29 of a 32-bit word
    return (a | (b << 10) | (c << 20)).astype("<u4").tobytes()[: -(-n * 4 // 3)]


def _digital(fmt: str, n: int, k: int, seed: int = 0) -> np.ndarray:
    """``n`` frames of ``k`` signals over the format's whole range (an invalid sample at [5, 0])."""
    lo, hi = RANGE[fmt]
    rng = np.random.default_rng(seed)
    if fmt == "8":  # differences within one byte
        return np.cumsum(rng.integers(-20, 21, (n, k)), axis=0)
    d = rng.integers(lo, hi + 1, (n, k), dtype=np.int64)
    d[0], d[1] = lo, hi
    if fmt in INVALID:
        d[5, 0] = INVALID[fmt]
    return d


def _expected(fmt: str, d: np.ndarray, gain: float, baseline: int) -> np.ndarray:
    exp = (d.T - baseline) / gain
    if fmt in INVALID:
        exp[d.T == INVALID[fmt]] = np.nan
    return exp


def _header(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["8", "16", "24", "32", "61", "80", "160", "212", "310", "311"])
@pytest.mark.parametrize("k,n", [(1, 999), (2, 1000), (3, 1001), (3, 1000)])
def test_wfdb_every_format_written_from_the_spec(tmp_path, fmt, k, n):
    d = _digital(fmt, n, k)
    (tmp_path / "r.dat").write_bytes(_encode(fmt, d))
    lines = [f"r {k} 500 {n}"] + [f"r.dat {fmt} 100(7)/mV 12 0 {d[0, j]} 0 0 {NAMES[j]}" for j in range(k)]
    rec, _ = _read(_header(tmp_path / "r.hea", lines))
    np.testing.assert_array_equal(_stored(rec, NAMES[:k]), _expected(fmt, d, 100.0, 7))
    assert rec.fs == 500.0 and rec.n_samples == n and set(NAMES[:k]) <= set(rec.leads)


@pytest.mark.parametrize("fmt", ["16", "24", "32", "80", "212", "508", "516", "524"])
@pytest.mark.parametrize("k,n", [(1, 999), (3, 1001)])
def test_wfdb_every_format_wfdb_writes(tmp_path, fmt, k, n):
    d = _digital(fmt, n, k, seed=1)
    wfdb.wrsamp("w", fs=360, units=["mV"] * k, sig_name=NAMES[:k], d_signal=d, fmt=[fmt] * k,
                adc_gain=[50.0 + j for j in range(k)], baseline=[-3 + j for j in range(k)], write_dir=str(tmp_path))
    rec, _ = _read(tmp_path / "w.hea")
    exp = np.stack([_expected(fmt, d[:, j:j + 1], 50.0 + j, -3 + j)[0] for j in range(k)])
    np.testing.assert_array_equal(_stored(rec, NAMES[:k]), exp)
    assert rec.fs == 360.0 and rec.duration == pytest.approx(n / 360)


UNITS = {"mV": 1.0, "mv": 1.0, "uV": 1e-3, "µV": 1e-3, "μV": 1e-3, "V": 1e3, "nV": 1e-6, "": 1.0}


@pytest.mark.parametrize("fmt", ["16", "32"])  # the fast 16-bit reader, and wfdb's
@pytest.mark.parametrize("unit", list(UNITS))
def test_wfdb_units_in_the_header(tmp_path, fmt, unit):
    """A UTF-8 ``µV`` was read as ``V`` through wfdb (10⁶ too large) and refused by the fast reader;
    no units is mV (header(5))."""
    d = _digital("16", 600, 2)
    d[5, 0] = 0
    d.astype("<i2" if fmt == "16" else "<i4").tofile(tmp_path / "u.dat")
    u = f"/{unit}" if unit else ""
    rec, _ = _read(_header(tmp_path / "u.hea", ["u 2 500 600"] + [f"u.dat {fmt} 200{u} 16 0 0 0 0 {x}" for x in NAMES[:2]]))
    np.testing.assert_allclose(_stored(rec, NAMES[:2]), d.T / 200 * UNITS[unit], rtol=1e-12)


def test_wfdb_signals_without_voltage_units_are_named_not_read(tmp_path):
    d = _digital("16", 600, 2)
    d.astype("<i2").tofile(tmp_path / "nu.dat")
    hea = _header(tmp_path / "nu.hea", ["nu 2 125 600", "nu.dat 16 200/NU 16 0 0 0 0 PLETH", "nu.dat 16 200/mV 16 0 0 0 0 II"])
    rec, _ = _read(hea)
    assert rec.meta["other_channels"] == ("PLETH (NU)",) and rec.leads == ("II",)
    np.testing.assert_array_equal(rec.lead("II"), np.where(d[:, 1] == -32768, np.nan, d[:, 1] / 200))
    _header(hea, ["nu 1 125 600", "nu.dat 16 200/NU 16 0 0 0 0 PLETH"])
    _refused(hea, "no voltage channel", "PLETH (NU)")


@pytest.mark.parametrize("fmt", ["16", "212"])
def test_wfdb_gain_0_or_none_is_uncalibrated_200_adu_per_mv(tmp_path, fmt):
    """header(5): a gain of 0 (or none) means uncalibrated, 200 ADC units per unit assumed; read so,
    said in ``meta['uncalibrated_leads']`` and a warning; a missing baseline is the ADC zero."""
    d = _digital("212", 800, 2)
    d[5, 0] = 0
    (tmp_path / "g.dat").write_bytes(_encode(fmt, d))
    rec, warned = _read(_header(tmp_path / "g.hea", ["g 2 500 800", f"g.dat {fmt} 0 12 0 0 0 0 I",
                                                     f"g.dat {fmt} 100 12 50 0 0 0 II"]))
    np.testing.assert_array_equal(rec.lead("I"), d[:, 0] / 200)
    np.testing.assert_array_equal(rec.lead("II"), (d[:, 1] - 50) / 100)
    assert rec.meta["uncalibrated_leads"] == ("I",) and any("uncalibrated" in w for w in warned)


def test_wfdb_minimal_signal_lines_keep_every_signal(tmp_path):
    """Signal lines of file name and format only: gain 200, mV, and no description; both signals kept
    (they were both named 'None', and one was dropped as a duplicate)."""
    d = _digital("16", 700, 2)
    d[5, 0] = 0
    d.astype("<i2").tofile(tmp_path / "m.dat")
    rec, warned = _read(_header(tmp_path / "m.hea", ["m 2 500 700", "m.dat 16", "m.dat 16"]))
    assert rec.leads == ("signal 0", "signal 1") and rec.meta["uncalibrated_leads"] == ("signal 0", "signal 1")
    np.testing.assert_array_equal(rec.signal, d.T / 200)


@pytest.mark.parametrize("fmt", ["16", "80", "212", "32"])
def test_wfdb_byte_offset(tmp_path, fmt):
    d = np.clip(_digital("16", 500, 2), *RANGE[fmt])
    d[5, 0] = 0
    (tmp_path / "o.dat").write_bytes(b"a file header of 103 bytes".ljust(103, b".") + _encode(fmt, d))
    rec, _ = _read(_header(tmp_path / "o.hea", ["o 2 500 500"] + [f"o.dat {fmt}+103 100(0)/mV 12 0 0 0 0 {x}" for x in NAMES[:2]]))
    np.testing.assert_array_equal(_stored(rec, NAMES[:2]), d.T / 100)


def test_wfdb_signals_in_several_files_of_their_own_formats(tmp_path):
    d = _digital("212", 900, 3)
    d[5, 0] = 0
    (tmp_path / "a.dat").write_bytes(b"\0" * 7 + _encode("16", d[:, :1]))
    (tmp_path / "b.dat").write_bytes(_encode("212", d[:, 1:]))
    rec, _ = _read(_header(tmp_path / "s.hea", ["s 3 500 900", "a.dat 16+7 100/mV 16 0 0 0 0 I",
                                                "b.dat 212 100(4)/uV 12 0 0 0 0 II", "b.dat 212 20/mV 12 0 0 0 0 V1"]))
    np.testing.assert_array_equal(rec.lead("I"), d[:, 0] / 100)
    np.testing.assert_allclose(rec.lead("II"), (d[:, 1] - 4) / 100 * 1e-3, rtol=1e-12)
    np.testing.assert_array_equal(rec.lead("V1"), d[:, 2] / 20)


def test_wfdb_skew_delays_a_signal_as_wfdb_does(tmp_path):
    """header(5) skew: sample t of a signal of skew s is stored in frame t + s.  wfdb reads the
    record's declared length of frames only, so the last s samples of that signal are NaN (counted)."""
    d = _digital("16", 1000, 2)
    d[d == -32768] = 0
    d.astype("<i2").tofile(tmp_path / "k.dat")
    rec, _ = _read(_header(tmp_path / "k.hea", ["k 2 500 995", "k.dat 16 100/mV 16 0 0 0 0 I", "k.dat 16:5 100/mV 16 0 0 0 0 II"]))
    np.testing.assert_array_equal(rec.lead("I"), d[:995, 0] / 100)
    np.testing.assert_array_equal(rec.lead("II")[:990], d[5:995, 1] / 100)
    assert np.isnan(rec.lead("II")[990:]).all() and rec.meta["non_finite_samples"] >= 5


def test_wfdb_comment_block_before_the_record_line_and_info_strings(tmp_path):
    d = _digital("16", 600, 2)
    d.astype("<i2").tofile(tmp_path / "c.dat")
    rec, _ = _read(_header(tmp_path / "c.hea", ["# converted by a tool", "#Age: 99", "c 2 500 600 10:11:12 13/01/2020",
                                                "# between", "c.dat 16 100/mV 16 0 0 0 0 I", "c.dat 16 100/mV 16 0 0 0 0 II",
                                                "#Age: 61", "#Sex: F", "#Dx: 426783006"]))
    assert (rec.meta["age"], rec.meta["sex"], rec.meta["dx"]) == (61.0, "F", ("426783006",))
    assert rec.meta["acquired"] == "2020-01-13T10:11:12" and rec.leads[:2] == ("I", "II")


@pytest.mark.parametrize("fmt", ["16", "212", "311"])
def test_wfdb_without_a_sample_count_reads_to_the_end_of_the_file(tmp_path, fmt):
    """header(5): the number of samples is optional (was refused as '0 samples'); so is the rate (250 Hz)."""
    d = np.clip(_digital("16", 1001, 2), -500, 500)
    (tmp_path / "n.dat").write_bytes(_encode(fmt, d))
    rec, _ = _read(_header(tmp_path / "n.hea", ["n 2"] + [f"n.dat {fmt} 100/mV 12 0 0 0 0 {x}" for x in NAMES[:2]]))
    assert rec.fs == 250.0 and rec.n_samples == 1001
    np.testing.assert_array_equal(_stored(rec, NAMES[:2]), d.T / 100)
    assert read(tmp_path / "n.hea", max_duration=2).n_samples == 500


@pytest.mark.parametrize("fmt", ["16", "212", "310", "24", "16x2"])
def test_wfdb_extra_bytes_are_ignored_and_a_short_file_refused(tmp_path, fmt):
    d = np.clip(_digital("16", 2000, 2), -500, 500)
    if fmt == "16x2":  # I at 2 samples a frame (1000 Hz), II at 1: 3 samples a frame
        body = np.column_stack([d[0::2, 0], d[1::2, 0], d[0::2, 1]]).astype("<i2").tobytes()
        lines = ["x 2 500 1000", "x.dat 16x2 100/mV 12 0 0 0 0 I", "x.dat 16 100/mV 12 0 0 0 0 II"]
    else:
        body = _encode(fmt, d[:1000])
        lines = ["x 2 500 1000"] + [f"x.dat {fmt} 100/mV 12 0 0 0 0 {n}" for n in NAMES[:2]]
    (tmp_path / "x.dat").write_bytes(body + b"\x01\x02" * 50)
    rec, _ = _read(_header(tmp_path / "x.hea", lines))
    assert rec.n_samples == 1000 and np.isfinite(rec.signal).all()
    if fmt != "16x2":
        np.testing.assert_array_equal(_stored(rec, NAMES[:2]), d[:1000].T / 100)
    (tmp_path / "x.dat").write_bytes(body[:-3])
    _refused(tmp_path / "x.hea", "signal file x.dat has", "truncated")


def test_wfdb_samples_per_frame_are_averaged_as_wfdb_does(tmp_path):
    """A signal of 2 samples per frame (1000 Hz in a 500-Hz record) is read at the frame rate, each
    frame's mean (wfdb's and the WFDB library's default), within half an ADC unit."""
    rng = np.random.default_rng(3)
    a, b = rng.integers(-2000, 2000, 2000), rng.integers(-2000, 2000, 1000)
    np.column_stack([a[0::2], a[1::2], b]).astype("<i2").tofile(tmp_path / "f.dat")
    rec, _ = _read(_header(tmp_path / "f.hea", ["f 2 500 1000", "f.dat 16x2 100/mV 16 0 0 0 0 I", "f.dat 16 100/mV 16 0 0 0 0 II"]))
    assert rec.fs == 500.0 and rec.n_samples == 1000
    np.testing.assert_allclose(rec.lead("I"), (a[0::2] + a[1::2]) / 200, atol=0.5 / 100 + 1e-12)
    np.testing.assert_array_equal(rec.lead("II"), b / 100)


def test_wfdb_truncated_flac_is_one_line(tmp_path):
    d = _digital("516", 2000, 2)
    wfdb.wrsamp("fl", fs=500, units=["mV"] * 2, sig_name=NAMES[:2], d_signal=d, fmt=["516"] * 2,
                adc_gain=[100.0] * 2, baseline=[0] * 2, write_dir=str(tmp_path))
    dat = tmp_path / "fl.dat"
    dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 2])
    _refused(tmp_path / "fl.hea", "cannot read signal", "FLAC")


def _segment(tmp_path, name, d, gain, baseline, units="mV", names=NAMES[:2], fs=500):
    wfdb.wrsamp(name, fs=fs, units=[units] * len(names), sig_name=list(names), d_signal=d, fmt=["16"] * len(names),
                adc_gain=[gain] * len(names), baseline=[baseline] * len(names), write_dir=str(tmp_path))
    return (d - baseline).T / gain * UNITS[units]


def test_wfdb_multisegment_fixed_layout(tmp_path):
    """Multi-segment records were refused ('MultiRecord' object has no attribute 'file_name');
    each segment's own gain and units apply."""
    rng = np.random.default_rng(4)
    parts = [_segment(tmp_path, f"s{j}", rng.integers(-2000, 2000, (n, 2)), g, b, u)
             for j, (n, g, b, u) in enumerate([(1000, 100.0, 0, "mV"), (500, 200.0, 10, "uV"), (1500, 50.0, -5, "mV")])]
    hea = _header(tmp_path / "fixed.hea", ["fixed/3 2 500 3000 08:00:00 02/03/2021", "s0 1000", "s1 500", "s2 1500", "#Age: 70"])
    rec, _ = _read(hea)
    np.testing.assert_allclose(_stored(rec, NAMES[:2]), np.hstack(parts), rtol=1e-12, atol=1e-15)
    assert rec.fs == 500.0 and rec.id == "fixed" and rec.meta["age"] == 70.0 and rec.meta["acquired"] == "2021-03-02T08:00:00"
    assert read(hea, max_duration=2.5).n_samples == 1250


def test_wfdb_multisegment_variable_layout_with_a_null_segment(tmp_path):
    """A layout segment (0 samples) gives the signals; a null segment ('~') and a lead a segment
    lacks are NaN; a segment's pressure channel is named, not read."""
    rng = np.random.default_rng(5)
    a = _segment(tmp_path, "sa", rng.integers(-2000, 2000, (1000, 2)), 100.0, 0)
    dc = rng.integers(-2000, 2000, (1500, 2))
    wfdb.wrsamp("sc", fs=500, units=["mmHg", "uV"], sig_name=["ABP", "II"], d_signal=dc, fmt=["16"] * 2,
                adc_gain=[80.0] * 2, baseline=[3] * 2, write_dir=str(tmp_path))
    _header(tmp_path / "v_layout.hea", ["v_layout 3 500 0", "~ 0 100/mV 16 0 0 0 0 I", "~ 0 100/mV 16 0 0 0 0 II",
                                        "~ 0 1/mmHg 16 0 0 0 0 ABP"])
    rec, _ = _read(_header(tmp_path / "v.hea", ["v/4 3 500 3000", "v_layout 0", "sa 1000", "~ 500", "sc 1500"]))
    assert rec.leads[:2] == ("I", "II") and rec.n_samples == 3000 and rec.meta["other_channels"] == ("ABP (mmHg)",)
    np.testing.assert_allclose(rec.lead("I"), np.concatenate([a[0], np.full(2000, np.nan)]), rtol=1e-12)
    exp_ii = np.concatenate([a[1], np.full(500, np.nan), (dc[:, 1] - 3) / 80 * 1e-3])
    np.testing.assert_allclose(rec.lead("II"), exp_ii, rtol=1e-12)


def test_wfdb_multisegment_refusals_name_the_segment(tmp_path):
    rng = np.random.default_rng(6)
    _segment(tmp_path, "ok", rng.integers(-99, 99, (500, 2)), 100.0, 0)
    _segment(tmp_path, "fast", rng.integers(-99, 99, (500, 2)), 100.0, 0, fs=1000)
    _refused(_header(tmp_path / "a.hea", ["a/2 2 500 1000", "ok 500", "gone 500"]), "gone.hea", "not found")
    _refused(_header(tmp_path / "b.hea", ["b/2 2 500 1000", "ok 500", "fast 500"]), "segment fast", "1000 Hz")
    _refused(_header(tmp_path / "c.hea", ["c/2 2 500 1000", "ok 500", "ok 600"]), "segments of 1100 samples")
    _refused(_header(tmp_path / "d.hea", ["d/2 2 500 1100", "ok 500", "ok 600"]), "segment ok holds 500 samples")
    _refused(_header(tmp_path / "e.hea", ["e/2 2 500 1000", "ok 500", "../ok 500"]), "not a record name")


# ------------------------------------------------------------------------------------------- EDF
def _f(v, w: int) -> bytes:
    s = str(v).encode("latin-1")
    assert len(s) <= w, (v, w)
    return s.ljust(w)


def _write_edf(path: Path, signals: list[dict], *, rec_dur: float = 1.0, reserved: str = "", bdf: bool = False,
               n_rec_field: int | None = None, tals: list[bytes] | None = None, tal_spr: int = 30) -> Path:
    """An EDF/BDF file written by hand from the EDF(+) specification: ``signals`` of ``label, dim,
    pmin, pmax, dmin, dmax, spr, digital``; ``tals``: an EDF+ annotation signal's bytes per record."""
    top = 8388607 if bdf else 32767  # the annotation signal spans the digital range (EDF+/BDF+)
    sigs = list(signals) + ([{"label": "BDF Annotations" if bdf else "EDF Annotations", "dim": "", "pmin": -1, "pmax": 1,
                              "dmin": -top - 1, "dmax": top, "spr": tal_spr}] if tals is not None else [])
    n_rec = len(tals) if tals is not None else len(signals[0]["digital"]) // signals[0]["spr"]
    h = (b"\xffBIOSEMI" if bdf else _f("0", 8)) + _f("X X X X", 80) + _f("Startdate 01-JAN-2020 X X X", 80)
    h += _f("01.01.20", 8) + _f("10.00.00", 8) + _f(256 * (len(sigs) + 1), 8) + _f(reserved, 44)
    h += _f(n_rec if n_rec_field is None else n_rec_field, 8) + _f(f"{rec_dur:g}", 8) + _f(len(sigs), 4)
    for key, w in [("label", 16), ("transducer", 80), ("dim", 8), ("pmin", 8), ("pmax", 8), ("dmin", 8), ("dmax", 8),
                   ("prefilter", 80), ("spr", 8), ("reserved", 32)]:
        h += b"".join(_f(s.get(key, ""), w) for s in sigs)
    width = 3 if bdf else 2
    body = bytearray()
    for r in range(n_rec):
        for s in sigs:
            if "digital" not in s:
                body += tals[r].ljust(s["spr"] * width, b"\0")  # type: ignore[index]
                continue
            d = np.asarray(s["digital"][r * s["spr"]:(r + 1) * s["spr"]], dtype=np.int64)
            u = d & 0xFFFFFF
            body += (np.stack([u & 255, (u >> 8) & 255, u >> 16], 1).astype("u1").tobytes() if bdf
                     else d.astype("<i2").tobytes())
    path.write_bytes(bytes(h) + bytes(body))
    return path


def _sig(label, dim, spr, n_rec, pmin=-3276.8, pmax=3276.7, dmin=-32768, dmax=32767, seed=0):
    d = np.random.default_rng(seed).integers(dmin, dmax + 1, spr * n_rec)
    return {"label": label, "dim": dim, "pmin": pmin, "pmax": pmax, "dmin": dmin, "dmax": dmax, "spr": spr, "digital": d}


def _phys(s) -> np.ndarray:
    """EDF: physical = pmin + (digital - dmin) × (pmax - pmin) / (dmax - dmin)."""
    return s["pmin"] + (np.asarray(s["digital"], float) - s["dmin"]) * (s["pmax"] - s["pmin"]) / (s["dmax"] - s["dmin"])


def _tal(onset: float, *texts: str) -> bytes:
    return f"+{onset:g}\x14\x14\x00".encode() + b"".join(f"+{onset:g}\x14{t}\x14\x00".encode() for t in texts)


def test_edf_leads_at_500_hz_and_respiration_at_25_hz(tmp_path):
    i, ii = _sig("ECG I", "uV", 500, 6, seed=1), _sig("ECG II", "uV", 500, 6, seed=2)
    resp, resp_uv = _sig("Resp", "Ohm", 25, 6, 0, 100, 0, 1000), _sig("Resp", "uV", 25, 6, seed=3)
    rec, _ = _read(_write_edf(tmp_path / "a.edf", [i, ii, resp]))
    assert rec.fs == 500.0 and rec.duration == 6.0 and rec.meta["other_channels"] == ("Resp (Ohm)",)
    np.testing.assert_allclose(_stored(rec, ["I", "II"]), np.stack([_phys(i), _phys(ii)]) / 1000, rtol=1e-12, atol=1e-12)
    rec, _ = _read(_write_edf(tmp_path / "b.edf", [i, ii, resp_uv]))
    assert rec.meta["skipped_channels"] == ("Resp (25 Hz)",) and rec.fs == 500.0


def test_edf_rate_is_the_ecg_leads_not_the_most_channels(tmp_path):
    """A PSG: one ECG lead at 512 Hz, four EEG channels in uV at 256 Hz.  The EEG channels' rate was
    taken (the most channels), the ECG lead skipped."""
    ecg, eeg = _sig("ECG II", "uV", 512, 3, seed=4), [_sig(f"EEG C{k}", "uV", 256, 3, seed=5 + k) for k in range(4)]
    rec, _ = _read(_write_edf(tmp_path / "psg.edf", [ecg, *eeg]))
    assert rec.fs == 512.0 and rec.leads == ("II",) and len(rec.meta["skipped_channels"]) == 4
    np.testing.assert_allclose(rec.lead("II"), _phys(ecg) / 1000, rtol=1e-12, atol=1e-12)


def test_edf_plus_and_bdf_plus_written_by_pyedflib_at_two_rates(tmp_path):
    rng = np.random.default_rng(7)
    for bdf in (False, True):
        p = tmp_path / ("p.bdf" if bdf else "p.edf")
        w = pyedflib.EdfWriter(str(p), 3, file_type=pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS)
        dmax = 8388607 if bdf else 32767
        w.setSignalHeaders([{"label": lab, "dimension": "uV", "sample_frequency": f, "physical_min": -5000,
                             "physical_max": 5000, "digital_min": -dmax - 1, "digital_max": dmax, "transducer": "",
                             "prefilter": ""} for lab, f in (("II", 500), ("V1", 500), ("Resp", 25))])
        dig = [rng.integers(-dmax - 1, dmax + 1, 500 * 4).astype(np.int32), rng.integers(-dmax, dmax, 500 * 4).astype(np.int32),
               rng.integers(-dmax, dmax, 25 * 4).astype(np.int32)]
        w.writeSamples(dig, digital=True)
        w.close()
        rec, _ = _read(p)
        exp = -5000 + (dig[0].astype(float) + dmax + 1) * 10000 / (2 * dmax + 1)
        np.testing.assert_allclose(rec.lead("II"), exp / 1000, rtol=1e-9, atol=1e-12)
        assert rec.fs == 500.0 and rec.duration == 4.0 and rec.leads == ("II", "V1")


@pytest.mark.parametrize("dim,scale", [("uV", 1e-3), ("mV", 1.0), ("V", 1e3), ("nV", 1e-6), ("µV", 1e-3), ("", 1.0)])
def test_edf_physical_dimensions(tmp_path, dim, scale):
    s = _sig("II", dim.replace("µ", "u"), 500, 3)
    p = _write_edf(tmp_path / "u.edf", [s])
    if dim == "µV":  # not ASCII (EDF allows ASCII only), but written by some devices
        raw = bytearray(p.read_bytes())
        at = raw.index(b"uV      ")
        raw[at:at + 8] = "µV".encode("latin-1").ljust(8)
        p.write_bytes(bytes(raw))
    rec, warned = _read(p)
    np.testing.assert_allclose(rec.lead("II"), _phys(s) * scale, rtol=1e-12, atol=1e-12)
    if not dim:  # mV assumed for a lead with no dimension, and said
        assert rec.meta["units_assumed"] == ("II",) and any("no physical dimension" in w for w in warned)


@pytest.mark.parametrize("pmin,pmax,dmin,dmax", [(3000, -3000, -32768, 32767), (-5000, 5000, 0, 4095),
                                                 (-10, 30, -2048, 100)])
def test_edf_negative_gain_and_asymmetric_digital_ranges(tmp_path, pmin, pmax, dmin, dmax):
    s = _sig("II", "mV", 500, 2, pmin, pmax, dmin, dmax)
    rec, _ = _read(_write_edf(tmp_path / "g.edf", [s]))
    np.testing.assert_allclose(rec.lead("II"), _phys(s), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dur,spr", [(0.1, 50), (10, 5000), (3, 1000), (0.5, 128), (1, 257)])
def test_edf_data_record_durations_and_non_integer_rates(tmp_path, dur, spr):
    s = _sig("II", "uV", spr, 3)
    rec, _ = _read(_write_edf(tmp_path / "d.edf", [s], rec_dur=dur))
    assert rec.fs == pytest.approx(spr / dur, rel=1e-12) and rec.duration == pytest.approx(3 * dur)
    np.testing.assert_allclose(rec.lead("II"), _phys(s) / 1000, rtol=1e-12, atol=1e-12)


def test_edf_unknown_number_of_records_is_taken_from_the_size(tmp_path):
    """-1 records (unknown while recording) was refused by pyedflib; the complete records are read."""
    s = _sig("II", "uV", 500, 4)
    p = _write_edf(tmp_path / "m.edf", [s], n_rec_field=-1)
    with open(p, "ab") as fh:
        fh.write(b"\0" * 300)  # a data record being written
    rec, warned = _read(p)
    assert rec.duration == 4.0 and rec.meta["n_records_from_size"] == 4 and any("-1" in w for w in warned)
    np.testing.assert_allclose(rec.lead("II"), _phys(s) / 1000, rtol=1e-12, atol=1e-12)


def test_edf_plus_d_contiguous_is_read_whole_and_with_a_gap_up_to_the_gap(tmp_path):
    """EDF+D was refused by pyedflib; contiguous records are read, a gap ends the reading (never
    joined with the wrong timing), said in ``meta['discontinuous']`` and a warning."""
    s = _sig("II", "uV", 500, 4)
    rec, warned = _read(_write_edf(tmp_path / "c.edf", [s], reserved="EDF+D", tals=[_tal(k) for k in range(4)]))
    assert rec.duration == 4.0 and "discontinuous" not in rec.meta
    np.testing.assert_allclose(rec.lead("II"), _phys(s) / 1000, rtol=1e-12, atol=1e-12)
    rec, warned = _read(_write_edf(tmp_path / "g.edf", [s], reserved="EDF+D", tals=[_tal(t) for t in (0, 1, 5, 6)]))
    assert rec.duration == 2.0 and "gap after 2 s" in rec.meta["discontinuous"] and any("EDF+D" in w for w in warned)
    np.testing.assert_allclose(rec.lead("II"), _phys(s)[:1000] / 1000, rtol=1e-12, atol=1e-12)
    assert read(tmp_path / "c.edf", max_duration=1).duration == 1.0
    _write_edf(tmp_path / "x.edf", [s], reserved="EDF+D", tals=[_tal(0), b"garbage", _tal(2), _tal(3)])
    _refused(tmp_path / "x.edf", "EDF+D data record 1", "time-keeping")


def test_bdf_plus_d_with_a_gap(tmp_path):
    s = _sig("II", "uV", 512, 3, -262144, 262143, -8388608, 8388607)
    rec, _ = _read(_write_edf(tmp_path / "g.bdf", [s], bdf=True, reserved="BDF+D", tals=[_tal(t) for t in (0, 1.5, 2.5)]))
    assert rec.duration == 1.0 and "gap after 1 s" in rec.meta["discontinuous"]
    np.testing.assert_allclose(rec.lead("II"), _phys(s)[:512] / 1000, rtol=1e-12, atol=1e-12)


def test_edf_plus_c_statements_and_an_annotations_only_file(tmp_path):
    s = _sig("II", "uV", 500, 2)
    rec, _ = _read(_write_edf(tmp_path / "c.edf", [s], reserved="EDF+C", tals=[_tal(0, "sinus rhythm"), _tal(1)]))
    assert rec.meta["statements"] == ("sinus rhythm",) and rec.duration == 2.0
    _write_edf(tmp_path / "a.edf", [], reserved="EDF+C", tals=[_tal(k, "note") for k in range(3)])
    _refused(tmp_path / "a.edf", "no ECG/voltage channel", "only EDF+ annotations")


def test_bdf_24_bit_written_from_the_spec(tmp_path):
    s = _sig("II", "uV", 512, 2, -262144, 262143, -8388608, 8388607)
    rec, _ = _read(_write_edf(tmp_path / "b.bdf", [s], bdf=True))
    np.testing.assert_allclose(rec.lead("II"), _phys(s) / 1000, rtol=1e-12, atol=1e-12)
    assert rec.fs == 512.0


# ------------------------------------------------------------------------------------ CSV / arrays
X = np.random.default_rng(8).normal(0, 1, (720, 2)).round(3)


def _csv(path: Path, header: str, t: np.ndarray | None, fmt="{:.3f}", sep=",", x=X, encoding="utf-8") -> Path:
    cols = ([t] if t is not None else []) + [x[:, 0], x[:, 1]]
    rows = [sep.join(fmt.format(v) if j == 0 and t is not None else f"{v:.3f}" for j, v in enumerate(r)) for r in zip(*cols)]
    path.write_bytes((header + "\n" + "\n".join(rows) + "\n").encode(encoding))
    return path


@pytest.mark.parametrize("fs,dec", [(360, 3), (128, 3), (257, 4), (2000, 3), (500, 2), (333.333333, 6)])
def test_csv_rate_from_a_rounded_time_column(tmp_path, fs, dec):
    """The rate was 1 / median step: 333.3 Hz for 360 Hz times written to the ms, 125 for 128."""
    rec, _ = _read(_csv(tmp_path / "t.csv", "time,I,II", np.arange(720) / fs, "{:.%df}" % dec))
    assert rec.fs == pytest.approx(fs, rel=1e-6) and rec.n_samples == 720
    np.testing.assert_array_equal(_stored(rec, ["I", "II"]), X.T)


def test_csv_time_column_in_ms_and_one_with_a_gap(tmp_path):
    rec, _ = _read(_csv(tmp_path / "ms.csv", "Time (ms),I,II", np.arange(720) * 2.0, "{:.1f}"))
    assert rec.fs == 500.0
    t = np.arange(720) / 500
    t[400:] += 0.004  # two samples missing
    p = _csv(tmp_path / "gap.csv", "time,I,II", t)
    _refused(p, "time column 'time' is not evenly spaced", "fs=")
    assert read(p, fs=500).fs == 500.0  # the caller's rate: the column is not used


def test_csv_units_in_the_header_and_european_exports(tmp_path):
    t = np.arange(720) / 250
    rec, _ = _read(_csv(tmp_path / "uv.csv", "time,I (uV),II (µV)", t, x=X * 1000))
    np.testing.assert_allclose(_stored(rec, ["I", "II"]), X.T, rtol=1e-12)
    p = tmp_path / "eu.csv"  # ';' separators and decimal commas (was: "could not convert '0,000'")
    p.write_text(_csv(tmp_path / "x.csv", "time;I;II", t, sep=";").read_text().replace(".", ","), encoding="utf-8")
    rec, _ = _read(p)
    assert rec.fs == 250.0
    np.testing.assert_allclose(_stored(rec, ["I", "II"]), X.T, rtol=1e-12)


@pytest.mark.parametrize("first,sep,dec", [("", ";", ","), ('"I (mV; filtered)",II', ",", "."), ("I;II", ";", ",")])
def test_csv_separator_and_decimal_comma_detection(tmp_path, first, sep, dec):
    rows = [sep.join(f"{v:.3f}".replace(".", dec) for v in r) for r in X]
    (tmp_path / "s.csv").write_text("\n".join(([first] if first else []) + rows) + "\n", encoding="utf-8")
    rec = read(tmp_path / "s.csv", fs=500, leads=None if first else ["I", "II"])
    np.testing.assert_array_equal(rec.signal[:2], X.T)


@pytest.mark.parametrize("kind", ["bom", "utf16", "quoted", "crlf", "tab"])
def test_csv_encodings_quotes_and_separators(tmp_path, kind):
    t, p = np.arange(720) / 250, tmp_path / "e.csv"
    if kind == "bom":
        _csv(p, "\ufefftime,I,II", t)
    elif kind == "utf16":  # spreadsheets' "Unicode text" (was refused as binary)
        _csv(p, "time\tI\tII", t, sep="\t", encoding="utf-16")
    elif kind == "quoted":  # quoted names and numbers (quoted numbers were refused)
        text = _csv(tmp_path / "x.csv", '"time","I","II"', t).read_text().splitlines()
        p.write_text("\n".join([text[0]] + ['"' + r.replace(",", '","') + '"' for r in text[1:]]))
    elif kind == "crlf":
        p.write_bytes(_csv(tmp_path / "x.csv", "time,I,II", t).read_bytes().replace(b"\n", b"\r\n"))
    else:
        _csv(p, "time\tI\tII", t, sep="\t")
    rec, _ = _read(p)
    assert rec.fs == 250.0 and rec.leads[:2] == ("I", "II")
    np.testing.assert_array_equal(_stored(rec, ["I", "II"]), X.T)


def test_npy_orientation_square_arrays_and_dtypes(tmp_path):
    s = np.random.default_rng(9).normal(0, 1, (5000, 12))
    np.save(tmp_path / "sl.npy", s)
    np.save(tmp_path / "ls.npy", s.T.copy())
    a, b = read(tmp_path / "sl.npy", fs=500, leads=L12), read(tmp_path / "ls.npy", fs=500, leads=L12)
    np.testing.assert_array_equal(a.signal, s.T)
    np.testing.assert_array_equal(b.signal, s.T)
    np.save(tmp_path / "sq.npy", s[:12])  # 12 leads × 12 samples or the reverse: cannot be told
    _refused(tmp_path / "sq.npy", "(12, 12) is square", fs=500)
    _refused(tmp_path / "sq.npy", "square", fs=500, leads=L12)
    np.save(tmp_path / "f16.npy", s.astype(np.float16))
    np.testing.assert_array_equal(read(tmp_path / "f16.npy", fs=500, leads=L12).signal, s.T.astype(np.float16).astype(float))
    np.save(tmp_path / "i16.npy", np.round(s * 1000).astype(np.int16))
    np.testing.assert_allclose(read(tmp_path / "i16.npy", fs=500, units="uV", leads=L12).signal, np.round(s.T * 1000) / 1000, rtol=1e-12)
    np.savez(tmp_path / "z.npz", signal=np.round(s * 1000).astype(np.int16), fs=500, units="uV", leads=L12)
    (rec,) = list(iter_read(tmp_path / "z.npz"))
    np.testing.assert_allclose(rec.signal, np.round(s.T * 1000) / 1000, rtol=1e-12)


@pytest.mark.parametrize("where", ["dataset", "file", "per_lead"])
def test_hdf5_units_attribute(tmp_path, where):
    """The file's ``units`` attribute was ignored (1000× too large for uV; the rate and the leads were
    taken from it); one unit per lead raised numpy's 'truth value of an array' error."""
    s = np.round(np.random.default_rng(10).normal(0, 1, (2000, 3)) * 1000)
    with h5py.File(tmp_path / "u.h5", "w") as f:
        ds = f.create_dataset("ecg", data=s.astype(np.int16))
        (f if where == "file" else ds).attrs["fs"] = np.array([500.0]) if where == "per_lead" else 500  # (an array was no rate)
        ds.attrs["leads"] = NAMES
        if where == "per_lead":
            ds.attrs["units"] = np.array(["uV", "mV", "µV"], dtype=h5py.string_dtype())
        else:
            (f if where == "file" else ds).attrs["units"] = "uV"
    rec, _ = _read(tmp_path / "u.h5")
    exp = s.T / 1000
    if where == "per_lead":
        exp[1] = s[:, 1]
    np.testing.assert_allclose(_stored(rec, NAMES), exp, rtol=1e-12)
    assert rec.fs == 500.0 and rec.duration == 4.0


def test_a_folder_of_multisegment_records_lists_each_record_once(tmp_path):
    """Finding records in a folder lists a multi-segment record by its own header alone: its segment
    headers (each a valid record on its own) and its layout header (no samples) are parts of it."""
    from ecgfounder.io import find_records

    rng = np.random.default_rng(7)
    for j in range(3):
        _segment(tmp_path, f"m_{j}", rng.integers(-2000, 2000, (500, 2)), 100.0, 0)
    _header(tmp_path / "m_layout.hea", ["m_layout 2 500 0", "~ 0 100/mV 16 0 0 0 0 I", "~ 0 100/mV 16 0 0 0 0 II"])
    _header(tmp_path / "m.hea", ["# a comment first", "m/4 2 500 1500", "m_layout 0", "m_0 500", "m_1 500", "m_2 500"])
    _segment(tmp_path, "alone", rng.integers(-2000, 2000, (500, 2)), 100.0, 0)
    assert [p.name for p in find_records([tmp_path])] == ["alone.hea", "m.hea"]
    assert read(tmp_path / "m.hea").n_samples == 1500
    # a hostile header naming segments by path: listed, and refused when read (find_records raised
    # ValueError 'Invalid name', costing every record of the folder)
    _header(tmp_path / "x.hea", ["x/3 2 500 1500", "../evil 500", "sub/y 500", ".. 500"])
    assert [p.name for p in find_records([tmp_path])] == ["alone.hea", "m.hea", "x.hea"]
    with pytest.raises(RecordReadError, match="segment '../evil' is not a record name"):
        read(tmp_path / "x.hea")
