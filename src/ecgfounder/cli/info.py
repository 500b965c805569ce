"""``ecgfounder info``: what each ECG file holds (leads, rate, duration, units, metadata)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import add_read_args, flags, read_options

__all__ = ["add_parser", "run", "describe"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="show leads, rate, duration and metadata of ECG files",
        description="Describe ECG files (any supported format; folders are searched). One line per recording, "
        "or JSON lines with --json. Unreadable files are reported on stderr; the exit code is 1 if any failed.",
    )
    p.add_argument("paths", nargs="+", metavar="FILE", help="ECG files or folders")
    p.add_argument("--json", action="store_true", help="one JSON object per recording")
    p.add_argument("--all", action="store_true", help="list every recording of batch files (default: first 3)")
    p.add_argument("--no-quality", action="store_true",
                   help="skip the signal-quality check (default: 'quality' shows 'good' or the flags)")
    add_read_args(p)
    p.set_defaults(func=run)


def describe(rec, path: str, *, quality: bool = True) -> dict[str, Any]:
    """A JSON-ready summary of a recording (with its signal-quality flags unless ``quality=False``)."""
    import numpy as np

    from .._fileio import to_jsonable

    m = dict(rec.meta)
    out: dict[str, Any] = {
        "path": path,
        "id": rec.id,
        "format": m.pop("format", None),
        "leads": list(rec.leads),
        "fs": rec.fs,
        "n_samples": rec.n_samples,
        "duration_s": round(rec.duration, 6),
        "units": m.pop("units", "mV"),
        "peak_to_peak_mv": [round(float(np.nanmax(x) - np.nanmin(x)), 4) if np.isfinite(x).any() else None
                            for x in rec.signal],
    }
    if quality:
        from ..signal.quality import assess

        report = assess(rec)
        out["quality"] = report.summary
        out["quality_leads"] = {lq.lead: list(lq.flags) for lq in report.leads if lq.flags}
    m.pop("source", None)
    m.pop("id", None)
    out.update(m)
    return to_jsonable(out)  # NaN/inf → null: strict JSON parsers reject NaN


def _line(d: dict[str, Any]) -> str:
    was = d.get("lead_names_from") or {}  # (a modified lead read as the standard one: "II from MLII")
    names = ",".join(f"{x} from {was[x]}" if x in was else x for x in d["leads"])
    parts = [f"{d['path']}{'#' + str(d['index']) if 'index' in d else ''}:",
             f"{d['format']},", f"{len(d['leads'])} lead{'s' if len(d['leads']) != 1 else ''} ({names}),",
             f"{d['fs']:g} Hz, {d['duration_s']:g} s, {d['units']}"]
    if "quality" in d:
        parts[-1] += f"; quality {d['quality']}"
    extra = []
    for key, label in (("patient_id", "patient"), ("age", "age"), ("sex", "sex"), ("acquired", "acquired"),
                       ("device", "device")):
        if d.get(key) not in (None, ""):
            v = d[key]
            extra.append(f"{label} {v:g}" if isinstance(v, float) else f"{label} {v}")
    for key in ("statements", "dx"):
        stm = d.get(key)
        if stm:
            extra.append(f"{key}: " + "; ".join(str(s) for s in stm[:3]) + (" …" if len(stm) > 3 else ""))
    return " ".join(parts) + ("; " + "; ".join(extra) if extra else "")


def run(args: argparse.Namespace) -> int:
    from ..errors import RecordReadError
    from ..io import find_records, iter_read

    files = find_records(args.paths)
    if not files:
        raise ValueError(f"no ECG files found in {' '.join(args.paths)}; give files or folders holding them.")
    kw = read_options(args)
    failed = 0

    def say(exc: Exception, f: object) -> None:
        msg = flags(" ".join(str(exc).split()))
        print(f"error: {msg if str(f) in msg else f'{f}: {msg}'}", file=sys.stderr)

    for f in files:
        shown, bad = 0, False
        try:
            for rec in iter_read(f, errors="yield", **kw):  # (an archive's bad file: its own line, in its place)
                if shown >= 3 and not args.all:
                    print(f"{f}: … more recordings (use --all to list them)")
                    break
                if isinstance(rec, RecordReadError):
                    bad = True
                    say(rec, f)
                else:
                    d = describe(rec, str(f), quality=not args.no_quality)
                    print(json.dumps(d, ensure_ascii=False, allow_nan=False) if args.json else _line(d))
                shown += 1
        except BrokenPipeError:
            raise  # (stdout closed: main ends quietly)
        except (RecordReadError, ValueError, OSError) as exc:
            bad = True
            say(exc, f)
        failed += bad
        sys.stdout.flush()
    if failed and len(files) > 1:
        print(f"error: {failed} of {len(files)} files could not be read", file=sys.stderr)
    return 1 if failed else 0
