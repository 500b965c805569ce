"""Tables written to disk atomically: CSV, Parquet or JSON Lines chosen by the file suffix.

Rows are streamed to a temporary file beside the target and renamed into place on success, so a
crash never leaves a half-written file under the requested name.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .._deps import require
from .._fileio import atomic_path, partial_path, publish, to_jsonable
from .columns import column_kinds

__all__ = ["TableWriter", "TABLE_SUFFIXES", "atomic_save_npy"]

TABLE_SUFFIXES = (".csv", ".parquet", ".jsonl")


def _kind(path: Path) -> str:
    suf = path.suffix.lower()
    if suf not in TABLE_SUFFIXES:
        raise ValueError(f"output {path}: unknown table type {suf or '(none)'!r}; use one of {', '.join(TABLE_SUFFIXES)}.")
    return suf[1:]


class TableWriter:
    """Append rows (dicts with fixed ``columns``) and :meth:`close` to publish the file.

    Use as a context manager; on an exception the temporary file is removed and nothing is
    published.  ``tmp_path`` may be given to keep the partial file (for resumable runs).
    ``kinds``: each column's value kind (``string``, ``int64``, ``float32``, ``float64``), the
    Parquet schema; default :func:`~.columns.column_kinds` (a prediction table's).  The schema is
    fixed from these, not from the first rows: a column empty there is typed all the same.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], *, tmp_path: str | os.PathLike | None = None,
                 append: bool = False, parquet_rows: int = 1024, kinds: Mapping[str, str] | None = None):
        self.path = Path(path)
        self.kind = _kind(self.path)
        self.columns = list(columns)
        self.kinds = {**column_kinds(self.columns), **(kinds or {})}
        self.tmp = Path(tmp_path) if tmp_path else partial_path(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"output {self.path}: cannot create its folder ({exc.strerror or exc}).") from None
        self._buffer: list[dict[str, Any]] = []
        self._parquet_rows = parquet_rows
        self._pq_writer = None
        self.n_rows = 0
        if self.kind == "parquet":
            require("pyarrow", "parquet", "writing .parquet tables")
        if self.kind == "parquet" and append:
            raise ValueError("appending to a partial Parquet file is not supported; use .csv or .jsonl for resumable runs.")
        mode = "a" if append and self.tmp.exists() else "w"
        if self.kind in ("csv", "jsonl"):
            try:
                self._fh = open(self.tmp, mode, newline="", encoding="utf-8")
            except OSError as exc:  # name the file asked for, not the hidden temporary one
                raise OSError(f"output {self.path}: cannot write in {self.path.parent} ({exc.strerror or exc}).") from None
            if self.kind == "csv":
                self._csv = csv.DictWriter(self._fh, fieldnames=self.columns, extrasaction="ignore")
                if mode == "w":
                    self._csv.writeheader()
        else:
            self._fh = None

    @staticmethod
    def check_path(path: str | os.PathLike) -> None:
        """Raise ``ValueError`` now if ``path`` has no supported table suffix, ``ImportError`` if
        its writer's package is missing (Parquet needs pyarrow)."""
        if _kind(Path(path)) == "parquet":
            import importlib.util

            if importlib.util.find_spec("pyarrow") is None:
                raise ImportError(f"output {path}: writing .parquet tables needs the optional package 'pyarrow'; "
                                  "install it with pip install 'ecgfounder[parquet]', or write .csv or .jsonl.")

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        try:
            self._write(rows)
        except OSError as exc:  # (a full disk: name the file asked for, not the hidden temporary one)
            err = OSError(f"output {self.path}: cannot write in {self.path.parent} ({exc.strerror or exc}).")
            err.errno = exc.errno
            raise err from None

    def _write(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.n_rows += 1
            if self.kind == "csv":
                self._csv.writerow({k: to_jsonable(row.get(k)) for k in self.columns})
            elif self.kind == "jsonl":
                self._fh.write(json.dumps({k: to_jsonable(row.get(k)) for k in self.columns}, allow_nan=True) + "\n")
            else:
                self._buffer.append(row)
                if len(self._buffer) >= self._parquet_rows:
                    self._flush_parquet()
        if self._fh is not None:
            self._fh.flush()

    def _flush_parquet(self) -> None:
        pa = require("pyarrow", "parquet", "writing .parquet tables")
        import pyarrow.parquet as pq

        if not self._buffer:
            return
        schema = self._schema()
        table = pa.Table.from_pylist([{k: to_jsonable(r.get(k)) for k in self.columns} for r in self._buffer],
                                     schema=schema)
        if self._pq_writer is None:
            self._pq_writer = pq.ParquetWriter(str(self.tmp), schema)
        self._pq_writer.write_table(table)
        self._buffer.clear()

    def _schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([(c, pa.type_for_alias(self.kinds[c])) for c in self.columns])

    def close(self, *, publish_now: bool = True) -> Path:
        """Finish the file and move it to its final name; returns the path.  ``publish_now=False``:
        finish it under its temporary name (:attr:`tmp`) and return that; :meth:`publish` moves it."""
        if self.kind == "parquet":
            self._flush_parquet()
            if self._pq_writer is None:  # no rows: still write a valid, empty file with the columns
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(self._schema().empty_table(), str(self.tmp))
            else:
                self._pq_writer.close()
        else:
            self._fh.close()
        return self.publish() if publish_now else self.tmp

    def publish(self) -> Path:
        """Move the finished file (:meth:`close` with ``publish_now=False``) to its final name."""
        return publish(self.tmp, self.path)

    def abort(self, keep: bool = False) -> None:
        """Close the temporary file, removed unless ``keep``.  What cannot be written then (a full
        disk) is dropped: a resumable run continues from its last saved record, not from here."""
        try:
            for f in (self._fh, self._pq_writer):
                if f is not None and not getattr(f, "closed", False):
                    try:
                        f.close()
                    except OSError:
                        pass
        finally:
            if not keep:
                self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """``np.save`` to a temporary file, then rename into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(path)
