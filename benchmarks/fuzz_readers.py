"""Mutation fuzz of every reader: each mutant is read AND preprocessed in a forked child with a time
limit (5 s for the read, 5 s for preprocessing) and an address-space limit (RLIMIT_AS, 2 GiB by
default), and its outcome counted:

  ok        read and preprocessed
  clean     refused with one line of the package's own error (ECGFounderError) naming the file
  message   the package's error, but not one line or not naming the file
  hang      ran past the time limit
  memory    MemoryError, or killed by the address-space limit
  other     any other exception (a foreign traceback)

The seeds are the small real files in tests/data plus EDF, BDF, NumPy, CSV, HDF5, CardioSoft, ISHNE
and gzip files written from a CinC 2021 record at start-up.  Mutations (seeded, reproducible): bit flips, byte
overwrites with boundary values, truncation, chunk deletion/duplication, and in text formats the
replacement of a number by an absurd one (1e-9, 1e308, 1,5, nan, -1, 99999999999).  Four mutants in
five get past the integrity checks (SCP record CRC recomputed, npz members and gzip payloads
mutated before compression) so that the parsers behind them are exercised.

    PYTHONPATH=src python benchmarks/fuzz_readers.py --n 5000 --seed 1
    PYTHONPATH=src python benchmarks/fuzz_readers.py --n 300 --no-fork --json   # the test suite's run

``--no-fork`` runs the mutants in this one process (fast; any hang or memory error still shows
as a failure of the whole run): the seeded test in tests/io/test_io_fuzz.py uses it.
Exit code 1 if any mutant ended as hang, memory, message or other.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
OUTCOMES = ("ok", "clean", "message", "hang", "memory", "other")
_ABSURD = [b"1e-9", b"1e308", b"1,5", b"nan", b"-1", b"0", b"99999999999", b"5e-324", b"inf", b"1e400"]
_TEXT_SUFFIXES = (".hea", ".xml", ".csv", ".tsv")


def seeds(work: Path) -> list[tuple[str, list[Path]]]:
    """``(format label, files)``: the first file is the one read; the others travel with it."""
    import ecgfounder.io as eio

    F = DATA / "formats"
    out: list[tuple[str, list[Path]]] = [
        ("wfdb16", [DATA / "cinc2021" / "E07500.hea", DATA / "cinc2021" / "E07500.mat"]),
        ("wfdb212", [DATA / "mitdb" / "100.hea", DATA / "mitdb" / "100.dat"]),
        ("dicom", [F / "dicom" / "ecgtoolkit_Example.dcm"]),
        ("dicom2", [F / "dicom" / "mortara_eli250_anonymous_ecg.dcm"]),
        ("hl7", [F / "hl7_aecg" / "hl7_2003-12_example_aECG.xml"]),
        ("hl7b", [F / "hl7_aecg" / "cvrg_hl7aecg-Example2.xml"]),
        ("muse", [F / "muse_xml" / "musePHI_muse_ecg1.xml"]),
        ("scp", [F / "scp_ecg" / "ecgtoolkit_Example.scp"]),
        ("healforce", [F / "scp_ecg" / "healforce_prince180d_62.SCP"]),
        ("sierra", [F / "sierra_xml" / "v1.03_129DYPRG.XML"]),
        ("sierra104", [F / "sierra_xml" / "v1.04.01_2020-5-18_15-48-11.xml"]),
    ]
    rec = eio.read(DATA / "cinc2021" / "E07500.hea")
    short = rec.replace(signal=rec.signal[:, :2500])
    work.mkdir(parents=True, exist_ok=True)
    out.append(("edf", [eio.write(short, work / "seed.edf", "edf")]))
    out.append(("bdf", [eio.write(short, work / "seed.bdf", "bdf")]))
    out.append(("npz", [eio.write(short, work / "seed.npz", "npz")]))
    np.save(work / "seed.npy", short.signal.astype(np.float32))
    out.append(("npy", [work / "seed.npy"]))
    lines = ["# fs=500", ",".join(short.leads)] + [",".join(f"{v:.4f}" for v in row) for row in short.signal.T[:1500]]
    (work / "seed.csv").write_text("\n".join(lines) + "\n")
    out.append(("csv", [work / "seed.csv"]))
    import h5py

    with h5py.File(work / "seed.h5", "w") as f:
        d = f.create_dataset("tracings", data=np.stack([short.signal.T.astype(np.float32)] * 2),
                             compression="gzip", chunks=(1, 2500, 12))
        d.attrs["fs"] = 500.0
    out.append(("hdf5", [work / "seed.h5"]))
    import scipy.io as sio  # MATLAB: a compressed level-5 struct (CPSC 2018's layout) and a level-4 matrix

    sio.savemat(work / "seed.mat", {"ECG": {"data": short.signal, "age": 60.0, "sex": "Male", "fs": 500.0}},
                do_compression=True)
    out.append(("matlab", [work / "seed.mat"]))
    sio.savemat(work / "seed4.mat", {"sig": short.signal[:, :1500], "fs": 500.0}, format="4")
    out.append(("matlab4", [work / "seed4.mat"]))
    try:  # the CardioSoft and ISHNE writers of their tests (no such files may be shipped)
        import importlib.util

        spec = importlib.util.spec_from_file_location("_cs_ishne", ROOT / "tests" / "io" / "test_io_cardiosoft_ishne.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.write_cardiosoft(work / "seed_cardiosoft.xml", rec)
        out.append(("cardiosoft", [work / "seed_cardiosoft.xml"]))
        mod.write_ishne(work / "seed.ecg", short.signal[[0, 1, 7]], 500, [5, 6, 12])
        out.append(("ishne", [work / "seed.ecg"]))
    except Exception as exc:  # noqa: BLE001
        print(f"(no CardioSoft/ISHNE seeds: {exc})", file=sys.stderr)
    try:  # an SCP record with reference-beat subtraction (sections 4, 5), as its tests build it
        sys.path.insert(0, str(ROOT / "tests" / "io"))
        spec = importlib.util.spec_from_file_location("_scp_beats", ROOT / "tests" / "io" / "test_io_scp_beats.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out.append(("scp_beats", [mod._scp(work, "seed_beats.scp")[0]]))
    except Exception as exc:  # noqa: BLE001
        print(f"(no SCP reference-beat seed: {exc})", file=sys.stderr)
    import wfdb

    segs = []  # a WFDB multi-segment record: the master header is mutated, its segments travel with it
    for j in range(2):
        wfdb.wrsamp(f"seg_{j}", fs=500, units=["mV"] * 12, sig_name=list(short.leads), write_dir=str(work),
                    p_signal=short.signal.T[:1250], fmt=["16"] * 12)
        segs += [work / f"seg_{j}.hea", work / f"seg_{j}.dat"]
    (work / "multi.hea").write_text("multi/2 12 500 2500\nseg_0 1250\nseg_1 1250\n")
    out.append(("wfdb_multi", [work / "multi.hea", *segs]))
    import gzip

    (work / "seed.xml.gz").write_bytes(gzip.compress((F / "muse_xml" / "musePHI_muse_ecg2.xml").read_bytes(), 6))
    out.append(("gzip", [work / "seed.xml.gz"]))
    return out


def mutate(data: bytes, rng: random.Random, text: bool) -> bytes:
    b = bytearray(data)
    kind = rng.choice(["flip", "flip", "bytes", "truncate", "delete", "duplicate"] + (["number"] * 4 if text else []))
    if not b:
        return bytes(b)
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            val = rng.choice([b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80"])
            b[i:i + len(val)] = val
    elif kind == "truncate":
        del b[rng.randrange(len(b)):]
    elif kind == "delete":
        i = rng.randrange(len(b))
        del b[i:i + rng.randint(1, 4096)]
    elif kind == "duplicate":
        i = rng.randrange(len(b))
        chunk = b[i:i + rng.randint(1, 4096)]
        b[i:i] = chunk * rng.randint(1, 8)
    else:
        nums = [m.span() for m in re.finditer(rb"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])", bytes(b[:200_000]))]
        for _ in range(rng.randint(1, 3)):
            if nums:
                s, e = rng.choice(nums)
                b[s:e] = rng.choice(_ABSURD)
                nums = [m.span() for m in re.finditer(rb"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])", bytes(b[:200_000]))]
    return bytes(b)


def _mutate_inside(f: Path, data: bytes, rng: random.Random) -> bytes:
    """Mutate past the integrity checks, so that the parsers behind them are exercised: SCP with its
    record CRC recomputed, npz members and gzip payloads mutated before (re)compression."""
    suffix = f.suffix.lower()
    if suffix == ".scp":
        import binascii
        import struct

        b = bytearray(mutate(data, rng, False))
        if len(b) >= 6:
            struct.pack_into("<H", b, 0, binascii.crc_hqx(bytes(b[2:]), 0xFFFF))
        return bytes(b)
    if suffix == ".npz":
        import io
        import zipfile

        src = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        victim = rng.choice(src.namelist())
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
            for name in src.namelist():
                member = src.read(name)
                dst.writestr(name, mutate(member, rng, False) if name == victim else member)
        return out.getvalue()
    if suffix == ".mat" and data[126:128] == b"IM" and len(data) > 136 and data[128] == 15:  # a compressed variable
        import struct
        import zlib

        (n,) = struct.unpack_from("<I", data, 132)
        body = zlib.compress(mutate(zlib.decompress(data[136:136 + n]), rng, False))
        return data[:128] + struct.pack("<II", 15, len(body)) + body + data[136 + n:]
    if suffix == ".gz":
        import gzip

        inner = gzip.decompress(data)
        return gzip.compress(mutate(inner, rng, True), 6)
    return mutate(data, rng, suffix in _TEXT_SUFFIXES)


def make_mutant(files: list[Path], dest: Path, rng: random.Random) -> Path:
    """Copy the seed's files into ``dest`` and mutate one of them; returns the file to read."""
    dest.mkdir(parents=True, exist_ok=True)
    target = rng.randrange(len(files))
    for k, f in enumerate(files):
        data = f.read_bytes()
        if k == target:
            data = _mutate_inside(f, data, rng) if rng.random() < 0.8 else mutate(data, rng, False)
        (dest / f.name).write_bytes(data)
    return dest / files[0].name


def attempt(path: Path) -> tuple[str, str]:
    """Read and preprocess ``path``; ``(outcome, detail)`` without the time/memory sandbox."""
    import ecgfounder.io as eio
    from ecgfounder.errors import ECGFounderError
    from ecgfounder.signal.preprocess import PreprocessContract, prepare

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kw = {"fs": 500} if path.suffix == ".npy" else {}
            recs = list(eio.iter_read(path, **kw))[:2]
            for rec in recs:
                prepare(rec.signal, rec.fs, rec.leads, PreprocessContract(leads=(rec.leads[0],)), source=str(path),
                        warn=False)
    except ECGFounderError as exc:
        msg = str(exc)
        if "\n" in msg or path.name not in msg:
            return "message", f"{type(exc).__name__}: {msg[:300]}"
        return "clean", type(exc).__name__
    except MemoryError:
        return "memory", "MemoryError"
    except _Timeout:
        return "hang", "timeout"
    except Exception as exc:
        return "other", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    return "ok", ""


class _Timeout(BaseException):
    pass


def _alarm(_sig, _frame):
    raise _Timeout()


def sandboxed(path: Path, seconds: float, mem_bytes: int) -> tuple[str, str]:
    """:func:`attempt` in a forked child under ``RLIMIT_AS`` and a wall-clock limit."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
            signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, 2 * seconds)  # read + preprocess: 5 s each
            out = attempt(path)
            signal.setitimer(signal.ITIMER_REAL, 0)
        except BaseException as exc:  # noqa: BLE001
            out = ("memory", "MemoryError") if isinstance(exc, MemoryError) else ("other", type(exc).__name__)
        os.write(w, json.dumps(out).encode()[:4000])
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + 2 * seconds + 5
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:  # stuck in C code that ignores the alarm
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            return "hang", "killed after the deadline"
        time.sleep(0.002)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    if not data:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        return ("memory" if sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT) else "other",
                f"child died (signal {sig}, status {status})")
    outcome, detail = json.loads(data)
    return outcome, detail


def run(n: int, seed: int, fork: bool, seconds: float, mem_bytes: int, work: Path) -> dict:
    import importlib

    import ecgfounder.io  # noqa: F401  (import once, before forking: children must not pay for imports)
    import ecgfounder.signal.preprocess  # noqa: F401

    for mod in ("wfdb", "edf", "dicom", "hl7", "muse", "scp", "sierra", "arrays", "hdf5", "compressed", "cardiosoft", "ishne",
                "matlab"):
        importlib.import_module(f"ecgfounder.io.{mod}")
    for lib in ("wfdb", "pyedflib", "pydicom", "h5py", "defusedxml.ElementTree", "sierraecg.xli", "zstandard",
                "scipy.signal"):
        try:
            importlib.import_module(lib)
        except ImportError:
            pass

    seed_files = seeds(work / "seeds")
    rng = random.Random(seed)
    counts: dict[str, Counter] = {label: Counter() for label, _ in seed_files}
    bad: list[dict] = []
    t0 = time.perf_counter()
    for k in range(n):
        label, files = seed_files[k % len(seed_files)]
        dest = work / f"m{k}"
        path = make_mutant(files, dest, rng)
        outcome, detail = sandboxed(path, seconds, mem_bytes) if fork else attempt(path)
        counts[label][outcome] += 1
        if outcome not in ("ok", "clean"):
            keep = work / "failures" / f"m{k}"
            shutil.copytree(dest, keep, dirs_exist_ok=True)
            bad.append({"mutant": k, "format": label, "outcome": outcome, "detail": detail, "kept": str(keep)})
            print(f"  FAIL #{k} {label}: {outcome}: {detail}", file=sys.stderr, flush=True)
        if (k + 1) % 500 == 0:
            print(f"  {k + 1} mutants, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        shutil.rmtree(dest, ignore_errors=True)
    total = Counter()
    for c in counts.values():
        total.update(c)
    return {"n": n, "seed": seed, "fork": fork, "seconds": round(time.perf_counter() - t0, 1),
            "total": {o: total.get(o, 0) for o in OUTCOMES},
            "per_format": {lab: {o: c.get(o, 0) for o in OUTCOMES if c.get(o)} for lab, c in counts.items()},
            "failures": bad[:50]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="number of mutants (spread over the seed formats)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0, help="time limit for the read, and again for preprocessing")
    ap.add_argument("--mem-gib", type=float, default=2.0, help="RLIMIT_AS of each child (GiB)")
    ap.add_argument("--no-fork", action="store_true", help="run the mutants in this process (no sandbox)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--keep", type=Path, default=None, help="folder for the mutants that failed (default: temporary)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ecgfounder-fuzz-")) if args.keep is None else args.keep
    try:
        res = run(args.n, args.seed, not args.no_fork, args.seconds, int(args.mem_gib * (1 << 30)), work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['n']} mutants (seed {res['seed']}) in {res['seconds']} s: " +
              ", ".join(f"{k} {v}" for k, v in res["total"].items()))
        for lab, c in res["per_format"].items():
            print(f"  {lab:10s} " + ", ".join(f"{k} {v}" for k, v in c.items()))
        for f in res["failures"]:
            print(f"  FAIL #{f['mutant']} {f['format']}: {f['outcome']}: {f['detail']}")
    t = res["total"]
    return 1 if (t["hang"] or t["memory"] or t["message"] or t["other"]) else 0


if __name__ == "__main__":
    sys.exit(main())
