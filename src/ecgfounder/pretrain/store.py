"""A sharded, streaming store of preprocessed windows and label states, on WebDataset.

Engine: **WebDataset** (``pip install ecgfounder[pretrain]``).  Why: it installs from PyPI as two
pure-Python packages (``webdataset``, ``braceexpand``) on top of the torch already here, while
MosaicML Streaming 0.13 and LitData 0.2.76 both pull a CUDA build of torch and torchvision
(``pip install --dry-run`` lists torch-2.14.1, triton and the nvidia-* wheels for each).  Its
shards are plain POSIX tar files: any disk, HTTP server or object store serves them, and
``tar -tf`` inspects them.

Layout of a store folder::

    index.json                 labels, preprocessing contract, shards with sample counts, failures
    labels_report.json         the statement-extraction report (unmatched statements listed)
    shard-CCCCC-KKK.tar        chunk C (a fixed run of source records), part K
    .build.json, .chunk-*.json the build's settings and its finished chunks (resume; :mod:`.chunks`)
    .build.lock                held by the process building the folder

Each sample: ``__key__`` ``RRRRRRRR_WWW`` (record, window), ``x.npy`` (leads × samples, float16
or float32, preprocessed by the contract), ``y.npy`` (int8 label states, see
:mod:`ecgfounder.pretrain.statements`), ``json`` (record id, source, window).

**Writing** (:func:`build_store`) reads each record with :func:`ecgfounder.read` (only its first
``max_duration`` seconds when given: records beyond the readers' size limit), prepares it with
:func:`ecgfounder.signal.preprocess.prepare` under the contract, extracts labels from the
statements the file carries (or from a manifest's ``statements`` column) plus, for files with
SNOMED ``dx`` codes (CinC 2021), the positives of
:func:`ecgfounder.labels.mappings.snomed_mapping` among the rule set's labels, and writes chunks in parallel processes.  Chunks have a fixed number
of records, so the store is the same whatever the number of workers.  A file that cannot be
read is listed in ``index.json`` and skipped.

**Reading** (:func:`iter_batches`): the epoch's shard order is shuffled with a generator seeded
by ``(seed, epoch)``, samples pass a seeded WebDataset shuffle buffer, and batches are cut from
that stream.  ``split="samples"`` (exact): every rank walks the same global stream and takes its
contiguous slice of each global batch, so *N* ranks see exactly what one process with the
*N*-fold batch sees (bytes of other ranks' samples are read, not decoded).
``split="shards"`` (scalable): rank *r* reads only shards ``r, r+N, ...`` of the shuffled
order; no duplicated I/O, but a different sample order than one process.  Resuming at batch
*k* of an epoch skips the first *k* batches of that stream before decoding: exact, at the cost of
re-reading those bytes.  Locations: a local folder, an ``http(s)://`` prefix (shards fetched
with ``curl`` by WebDataset), or any other prefix with a ``pipe:`` command template such as
``pipe:aws s3 cp s3://bucket/store/{name} -``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .._fileio import WriterLock, write_json
from ..signal.preprocess import PreprocessContract
from . import chunks
from .shards import _NAME, INDEX, SPLITS, StoreError, StoreInfo, decode, need_wds, shard_samples
from .statements import LabelReport, RuleSet, default_rules, extract_record

__all__ = ["StoreError", "StoreInfo", "build_store", "label_sources", "describe", "open_store", "iter_batches", "steps_per_epoch", "SPLITS"]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- writing

def _sources(sources: Any) -> list[tuple[str, tuple[str, ...] | None]]:
    """``[(path, statements or None)]`` from a folder, a manifest CSV or a list of paths."""
    if isinstance(sources, (str, os.PathLike)):
        p = Path(sources)
        if p.is_dir():
            from ..io.detect import find_records

            return [(str(f), None) for f in find_records([p])]
        if p.suffix.lower() in (".csv", ".tsv"):
            import pandas as pd

            df = pd.read_csv(p, sep="\t" if p.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False)
            if "path" not in df.columns:
                raise StoreError(f"manifest {p} has no 'path' column; columns: {list(df.columns)}.")
            out = []
            for _, row in df.iterrows():
                path = row["path"] if Path(row["path"]).is_absolute() else str(p.parent / row["path"])
                st = tuple(s.strip() for s in str(row["statements"]).split("|") if s.strip()) if "statements" in df.columns else None
                out.append((path, st))
            return out
        if p.exists():
            return [(str(p), None)]
        raise StoreError(f"source {p} not found; give a folder of records, a manifest CSV (path[,statements]) or files.")
    from ..io.detect import find_records

    return [(str(f), None) for f in find_records([str(s) for s in sources])]


def _record_labels(rec, statements, rules: RuleSet):
    """Labels from the statements (given, or the file's own); SNOMED ``dx`` codes the file carries
    add positives through the package's CinC mapping for the labels of the rule set it names."""
    stm = statements if statements is not None else tuple(rec.meta.get("statements") or ())
    labels = extract_record(stm, rules)
    dx = rec.meta.get("dx")
    if dx:
        from ..labels.mappings import snomed_mapping
        from .statements import POSITIVE, RecordLabels

        known = set(rules.labels)
        mapped = [lab for lab in sorted(snomed_mapping().targets(dx)[0]) if lab in known]
        if mapped:
            labels = RecordLabels({**labels.states, **{lab: POSITIVE for lab in mapped}}, labels.statements)
    return labels


def _write_chunk(job: dict) -> dict:
    import warnings

    wds = need_wds()
    from ..io import read
    from ..signal.preprocess import prepare

    contract = PreprocessContract.from_dict(job["contract"])
    rules: RuleSet = job["rules"]
    dtype = np.dtype(job["dtype"])
    report = LabelReport(rules.labels)
    shards, counts, failures = [], [], []
    writer, n_in_shard, part = None, 0, 0
    out = Path(job["out"])

    def _open():
        nonlocal writer, n_in_shard, part
        name = f"shard-{job['chunk']:05d}-{part:03d}.tar"
        writer = wds.TarWriter(str(out / (name + ".tmp")))
        shards.append(name)
        counts.append(0)
        n_in_shard = 0
        part += 1

    for rec_idx, path, statements in job["items"]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec = read(path, **_read_options(job["max_duration"]))
                prep = prepare(rec.signal, rec.fs, rec.leads, contract, fill_missing=job["fill_missing"],
                               source=path, warn=False)
            labels = _record_labels(rec, statements, rules)
        except Exception as exc:  # one bad file never stops the store
            failures.append((path, " ".join(str(exc).split())[:300]))
            continue
        report.add(labels)
        y = labels.encode(rules.labels)
        for w, win in enumerate(prep.windows):
            if writer is None or n_in_shard >= job["shard_size"]:
                if writer is not None:
                    writer.close()
                _open()
            writer.write({"__key__": f"{rec_idx:08d}_{w:03d}", "x.npy": win.astype(dtype), "y.npy": y,
                          "json": {"id": rec.id, "source": path, "window": w, "n_windows": len(prep.windows)}})
            n_in_shard += 1
            counts[-1] += 1
    if writer is not None:
        writer.close()
    for name in shards:
        os.replace(out / (name + ".tmp"), out / name)
    res = {"shards": chunks.shard_entries(out, shards, counts), "failures": failures, "report": report.to_dict()}
    if job["build"]:  # the chunk is recorded as finished only now, its shard files in place
        chunks.record(out, job["chunk"], job["build"], res)
    return res


_START_METHOD = "spawn"  # of the chunk writers (a worker holds no state of its parent)


def _chunk_alone(job: dict, ctx: Any) -> dict:
    """A chunk that was in flight when a worker died, in a worker of its own.  If a record kills
    that worker (a reader's C library crashing on a hostile file, the out-of-memory killer), each
    record of the chunk is read and prepared alone, in turn, to find the killers; the chunk is
    written without them, each a failure (:data:`~ecgfounder._pools.CRASHED`)."""
    from .._pools import CRASHED, without_killers

    unrecorded = {**job, "build": None}  # (recorded here, once the killers are among its failures)

    def drop(hit: set[int]) -> dict:
        for stale in Path(job["out"]).glob(f"shard-{job['chunk']:05d}-*.tar.tmp"):  # (begun by the dead worker)
            stale.unlink()
        return {**unrecorded, "items": [it for i, it in enumerate(job["items"]) if i not in hit]}

    res, hit = without_killers(
        ctx, _write_chunk, unrecorded, _probe_record,
        [(path, job["contract"], job["fill_missing"], job["max_duration"]) for _, path, _ in job["items"]],
        drop, lambda: StoreError(
            f"chunk {job['chunk']} (records {job['items'][0][1]} to {job['items'][-1][1]}) ends its worker process "
            "even without the records that did so alone (out of memory?); build with fewer workers or smaller "
            "records_per_chunk."))
    order = {path: i for i, (_, path, _) in enumerate(job["items"])}
    failures = res["failures"] + [(job["items"][i][1], CRASHED) for i in sorted(hit)]
    res = {**res, "failures": sorted(failures, key=lambda f: order.get(f[0], len(order)))}
    chunks.record(Path(job["out"]), job["chunk"], job["build"], res)
    return res


def _read_options(max_duration: float | None) -> dict[str, Any]:
    """The :func:`ecgfounder.read` options of a build (none unless ``max_duration`` is given)."""
    return {} if max_duration is None else {"max_duration": max_duration}


def _probe_record(path: str, contract: dict, fill_missing: bool, max_duration: float | None = None) -> None:
    """Read and prepare one record and drop the result: whether it takes its process down."""
    import warnings

    from ..io import read
    from ..signal.preprocess import prepare

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = read(path, **_read_options(max_duration))
            prepare(rec.signal, rec.fs, rec.leads, PreprocessContract.from_dict(contract), fill_missing=fill_missing,
                    source=path, warn=False)
    except Exception:  # noqa: BLE001 - an ordinary failure is _write_chunk's to report
        pass


def build_store(
    sources: Any,
    out: str | os.PathLike,
    *,
    contract: PreprocessContract | None = None,
    rules: RuleSet | None = None,
    workers: int = 0,
    records_per_chunk: int = 256,
    shard_size: int = 2048,
    dtype: str = "float16",
    fill_missing: bool = True,
    max_duration: float | None = None,
    restart: bool = False,
) -> StoreInfo:
    """Write a shard store from records (see the module docstring).

    A build cut short (interrupted, crashed, machine lost) resumes: run it again with the same
    sources and settings (``workers`` may differ) into the same folder, and every chunk that was
    finished, and whose shard files still verify against its record (sizes and SHA-256), is kept;
    only the others are written (:mod:`ecgfounder.pretrain.chunks`; the log says how many chunks
    were reused).  A finished store built again the same way is only verified.  A build with
    other sources or settings into a folder holding another build's chunks is refused with a
    :class:`StoreError` naming what changed, so that hours of work are never discarded by a typo:
    build into another folder, or pass ``restart=True`` to discard them and start over.

    Args:
        sources: a folder of records, a manifest CSV (``path[,statements]``; statements separated
            by ``|``) or a list of files.
        out: the store folder (created).
        contract: preprocessing of the windows (default: the published 12-lead contract).
        rules: statement rules and label set (default: the 150 labels, :func:`default_rules`).
        workers: writer processes (0: one per CPU core, at most one per chunk).
        records_per_chunk: records per chunk (the unit of parallel work); shards hold at most
            ``shard_size`` windows.
        dtype: ``float16`` (half the disk; ~1e-3 relative rounding) or ``float32``.
        fill_missing: zero-fill leads a record lacks (e.g. precordials of a 2-lead Holter) instead
            of skipping it.
        max_duration: store only the first ``max_duration`` seconds of each record (read no more):
            how records above the readers' size limit (e.g. 24-h Holters) are stored; ``None``
            (default): whole records, within the limit (:mod:`ecgfounder.io.limits`).
        restart: discard what an earlier build wrote in ``out`` (any settings) and start over.
    """
    if dtype not in ("float16", "float32"):
        raise StoreError(f"dtype={dtype!r} is not valid; choose float16 or float32.")
    if max_duration is not None and not (isinstance(max_duration, (int, float, np.number))
                                         and 0 < float(max_duration) < float("inf")):
        raise StoreError(f"max_duration={max_duration!r} is not valid; give a positive number of seconds, or None "
                         "for whole records.")
    need_wds()
    contract = contract or PreprocessContract()
    rules = rules or default_rules()
    items = [(i, p, s) for i, (p, s) in enumerate(_sources(sources))]
    if not items:
        raise StoreError(f"no records found in {sources}; give a folder of ECG files or a manifest.")
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    lock = WriterLock(out_p / ".build.lock", lambda holder: StoreError(
        f"{out_p} is being built by another process (PID {holder}); wait for it to end, stop it, or build into "
        "another folder."))
    with lock:
        key = chunks.start(out_p, chunks.settings(items, contract, rules, dtype, shard_size, records_per_chunk,
                                                  fill_missing, max_duration), restart)
        return _build(items, out_p, key, contract, rules, workers, records_per_chunk, shard_size, dtype, fill_missing,
                      max_duration)


def _build(items, out_p: Path, key: str, contract, rules, workers, records_per_chunk, shard_size, dtype,
           fill_missing, max_duration) -> StoreInfo:
    jobs = [
        {"chunk": c, "items": items[k : k + records_per_chunk], "out": str(out_p), "contract": contract.to_dict(),
         "rules": rules, "dtype": dtype, "shard_size": int(shard_size), "fill_missing": fill_missing, "build": key,
         "max_duration": max_duration}
        for c, k in enumerate(range(0, len(items), max(1, int(records_per_chunk))))
    ]
    n_workers = min(workers or os.cpu_count() or 1, len(jobs))
    results = chunks.finished(out_p, key, len(jobs), n_workers)
    todo = [j for j in jobs if j["chunk"] not in results]
    if results:
        log.info("%s: %d of %d chunks reused from an earlier run of this build; %d to write", out_p, len(results),
                 len(jobs), len(todo))
    n_workers = min(n_workers, len(todo))
    try:
        if n_workers <= 1:
            done = [_write_chunk(j) for j in todo]
        else:
            import multiprocessing as mp

            from .._pools import run_in_order

            ctx = mp.get_context(_START_METHOD)
            done = run_in_order(_write_chunk, todo, n_workers, ctx, lambda job: _chunk_alone(job, ctx))
    except KeyboardInterrupt:  # (said only "interrupted": the user could not tell that the chunks written are kept)
        kept = sum(chunks.record_path(out_p, j["chunk"]).is_file() for j in jobs)
        raise KeyboardInterrupt(f"interrupted: {kept} of {len(jobs)} chunks of {out_p} are written and kept; the same "
                                "command (same sources and settings) goes on from them.") from None
    results.update((j["chunk"], r) for j, r in zip(todo, done))
    report = LabelReport(rules.labels)
    shards, failures = [], []
    for c in range(len(jobs)):  # (reused or not, every chunk's part comes from its record's form)
        shards += results[c]["shards"]
        failures += results[c]["failures"]
        report.merge(LabelReport.from_dict(rules.labels, results[c]["report"]))
    index = {"format": "ecgfounder-shards", "version": 1, "engine": "webdataset", "labels": list(rules.labels),
             "contract": contract.to_dict(), "dtype": dtype, "n_samples": int(sum(s["count"] for s in shards)),
             "shards": [{"name": s["name"], "count": s["count"]} for s in shards],
             "failures": [{"path": p, "error": e} for p, e in failures]}
    write_json(out_p / "labels_report.json", report.to_dict())
    write_json(out_p / INDEX, index)
    keep = {s["name"] for s in shards}
    for stale in out_p.glob("shard-*.tar*"):  # of an earlier, larger store here, or of a build cut short
        if stale.name not in keep:
            stale.unlink(missing_ok=True)
    return open_store(out_p)


def label_sources(sources: Any, rules: RuleSet | None = None, *, statements: Sequence[str] = ()) -> tuple[list[dict], LabelReport]:
    """Labels of records (their statements, or SNOMED ``dx`` codes) and of loose ``statements``
    without building a store: ``([{source, labels: {label: state name}, error}], report)``."""
    import warnings

    from ..io import read
    from .statements import STATE_NAMES

    rules = rules or default_rules()
    report = LabelReport(rules.labels)
    rows = []
    items = _sources(sources) if sources else []
    for path, stm in items:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                labels = _record_labels(read(path), stm, rules)
        except Exception as exc:  # one bad file never stops the batch
            rows.append({"source": path, "labels": {}, "error": " ".join(str(exc).split())[:300]})
            continue
        report.add(labels)
        rows.append({"source": path, "labels": {k: STATE_NAMES[v] for k, v in labels.states.items()}, "error": None})
    if statements:
        labels = extract_record(statements, rules)
        report.add(labels)
        rows.append({"source": "<statements>", "labels": {k: STATE_NAMES[v] for k, v in labels.states.items()}, "error": None})
    return rows, report


# --------------------------------------------------------------------------- reading

def _read_text(location: str, name: str) -> str:
    if location.startswith("pipe:"):
        import subprocess

        cmd = location[len("pipe:"):].replace("{name}", name)
        return subprocess.run(cmd, shell=True, check=True, capture_output=True, timeout=300).stdout.decode("utf-8")
    if location.startswith(("http://", "https://")):
        with urllib.request.urlopen(location.rstrip("/") + "/" + name, timeout=60) as r:  # noqa: S310 (user's URL)
            return r.read().decode("utf-8")
    p = Path(location) / name
    if not p.is_file():
        raise StoreError(f"{location}: no {name}; build the store first (ecgfounder pretrain build-store).")
    return p.read_text(encoding="utf-8")


def open_store(location: str | os.PathLike) -> StoreInfo:
    """The :class:`StoreInfo` of a store folder, ``http(s)://`` prefix or ``pipe:`` template."""
    loc = str(location)
    try:
        idx = json.loads(_read_text(loc, INDEX))
    except (OSError, ValueError) as exc:
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"{loc}: cannot read {INDEX} ({' '.join(str(exc).split())[:200]}).") from None
    if not isinstance(idx, dict) or idx.get("format") != "ecgfounder-shards":
        raise StoreError(f"{loc}/{INDEX} is not an ecgfounder shard index "
                         f"(format={idx.get('format') if isinstance(idx, dict) else None!r}).")
    try:
        shards = tuple(str(s["name"]) for s in idx["shards"])
        counts = tuple(int(s["count"]) for s in idx["shards"])
        info = StoreInfo(loc, shards, counts, tuple(str(lab) for lab in idx["labels"]),
                         PreprocessContract.from_dict(idx["contract"]), str(idx["dtype"]),
                         tuple((str(f["path"]), str(f["error"])) for f in idx.get("failures", ())))
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{loc}/{INDEX} is damaged ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                         "rebuild the store (ecgfounder pretrain build-store).") from None
    bad = [n for n in shards if not _NAME.fullmatch(n)] + [str(c) for c in counts if c < 0]
    labels = info.labels
    if not labels or len(set(labels)) < len(labels):  # (a model trained on it would publish duplicate outputs)
        from collections import Counter

        dup = sorted(lab for lab, n in Counter(labels).items() if n > 1)
        raise StoreError(f"{loc}/{INDEX} is damaged: its labels are {'repeated: ' + repr(dup[:5]) if dup else 'empty'} "
                         "(the columns of y, one per label); rebuild the store (ecgfounder pretrain build-store).")
    if bad or info.dtype not in ("float16", "float32"):
        raise StoreError(f"{loc}/{INDEX} is damaged: {(bad or [info.dtype])[0]!r} is not a shard file name with its "
                         "count (a plain NAME.tar, a count >= 0) or a dtype (float16, float32); rebuild the store "
                         "(ecgfounder pretrain build-store).")
    return info


def _epoch_shards(info: StoreInfo, epoch: int, seed: int, shuffle: bool) -> list[int]:
    order = list(range(len(info.shards)))
    if shuffle:
        random.Random(f"shards:{seed}:{epoch}").shuffle(order)
    return order


def _rank_shards(info: StoreInfo, order: list[int], rank: int, world: int, split: str) -> list[int]:
    if split not in SPLITS:
        raise StoreError(f"split={split!r} is not valid; choose one of {list(SPLITS)}.")
    if split == "samples":
        return order
    if len(order) < world:
        raise StoreError(f"split='shards' needs at least one shard per process: {len(order)} shards for {world} "
                         "processes; rebuild with a smaller shard_size or use split='samples'.")
    return order[rank::world]


def steps_per_epoch(info: StoreInfo, global_batch: int, *, world: int = 1, split: str = "samples",
                    epoch: int = 0, seed: int = 0, shuffle: bool = True) -> int:
    """Full global batches in one epoch (the last partial batch is dropped)."""
    if global_batch % world:
        raise StoreError(f"batch_size={global_batch} is not divisible by the {world} processes; use a multiple of {world}.")
    if split == "samples":
        return info.n_samples // global_batch
    order = _epoch_shards(info, epoch, seed, shuffle)
    per = global_batch // world
    return min(sum(info.counts[i] for i in _rank_shards(info, order, r, world, split)) // per for r in range(world))


def iter_batches(
    info: StoreInfo,
    *,
    global_batch: int,
    epoch: int = 0,
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
    split: str = "samples",
    shuffle: bool = True,
    shuffle_buffer: int = 1000,
    start_batch: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
    """This rank's batches ``(x (b, leads, samples) float32, y (b, n_labels) int8, keys)`` of one
    epoch, from batch ``start_batch`` on (see the module docstring)."""
    wds = need_wds()
    n_steps = steps_per_epoch(info, global_batch, world=world, split=split, epoch=epoch, seed=seed, shuffle=shuffle)
    per = global_batch // world
    order = _rank_shards(info, _epoch_shards(info, epoch, seed, shuffle), rank, world, split)
    stream: Iterator[dict] = shard_samples(info, order)
    if shuffle and shuffle_buffer > 1:
        rng_key = f"samples:{seed}:{epoch}" + ("" if split == "samples" else f":{rank}")
        stream = iter(wds.shuffle(shuffle_buffer, initial=shuffle_buffer, rng=random.Random(rng_key))(stream))
    step_items = global_batch if split == "samples" else per
    lo = rank * per if split == "samples" else 0
    for _ in range(start_batch * step_items):  # resume: skip without decoding
        next(stream)
    for _ in range(start_batch, n_steps):
        raw = [next(stream) for _ in range(step_items)][lo : lo + per]
        dec = [decode(s, info) for s in raw]
        yield np.stack([d[0] for d in dec]), np.stack([d[1] for d in dec]), [d[2] for d in dec]


def describe(info: StoreInfo) -> dict[str, Any]:
    """A short summary for printing."""
    return {"location": info.location, "samples": info.n_samples, "shards": len(info.shards), "labels": len(info.labels),
            "leads": list(info.contract.leads), "fs": info.contract.fs, "dtype": info.dtype, "failures": len(info.failures)}

