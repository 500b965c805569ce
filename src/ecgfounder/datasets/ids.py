"""Record and patient ids of the datasets that define them as integers (PTB-XL ``ecg_id`` and
``patient_id``, MIMIC-IV-ECG ``study_id`` and ``subject_id``), written one way on both sides of
every join.

pandas reads such a column as integers (``00123`` → 123), as floats when a cell is blank
(``123.0``) or as text when one cell is not a number (``'00123'`` stays as written), so two tables
of the same ids can disagree.  :func:`integer_ids` writes each as the integer's text (``'123'``),
whatever the table held, and :func:`check_unique_ids` refuses two values that become one id.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from .errors import DatasetError

__all__ = ["integer_ids", "check_unique_ids", "as_text"]

# an integer written as text: optional sign, leading zeros, an optional '.0' that a float column left
_INTEGER = r"(?:\+|(-))?0*(\d+?)(?:\.0*)?"


def integer_ids(col: pd.Series) -> pd.Series:
    """``'00123'``, ``123``, ``123.0`` and ``' 123 '`` → ``'123'``; other values (``'HR123'``,
    ``1.5``) as their text, stripped; blank cells stay missing (``NaN``)."""
    blank = col.isna()
    if pd.api.types.is_bool_dtype(col):
        text = col.astype(str)
    elif pd.api.types.is_integer_dtype(col):
        text = col.astype("Int64").astype(str)
    elif pd.api.types.is_float_dtype(col):
        whole = ~blank & (col % 1 == 0)
        text = col.astype(str).where(~whole, col.where(whole, 0).round().astype("int64").astype(str))
    else:
        text = col.astype(str).str.strip()
        text = text.str.replace(rf"^{_INTEGER}$", r"\1\2", regex=True)
    return text.astype(object).where(~blank, None)


def check_unique_ids(ids: pd.Series, raw: pd.Series, *, where: object, column: str, fix: str) -> None:
    """A :class:`DatasetError` naming the first two rows whose ids are one once normalised
    (``ids``: :func:`integer_ids` of ``raw``), with the values as the table wrote them."""
    dup = ids.duplicated(keep=False).to_numpy()
    if not dup.any():
        return
    first = ids[dup].iloc[0]
    rows = [i for i, v in enumerate(ids) if v == first][:2]
    a, b = (raw.iloc[i] for i in rows)
    if str(a).strip() == str(b).strip():
        raise DatasetError(f"{where}: {column} {first!r} has several rows (data rows {rows[0] + 1} and {rows[1] + 1}); {fix}")
    raise DatasetError(
        f"{where}: {column} {a!r} (data row {rows[0] + 1}) and {b!r} (data row {rows[1] + 1}) are the same id "
        f"{first!r} once written alike (leading zeros, '.0' dropped); {fix}"
    )


def as_text(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` of a typed (Parquet) table as text, whole floats without ``.0``; blanks kept."""
    for c in columns:
        if c in df.columns and not pd.api.types.is_string_dtype(df[c]):
            col = df[c]
            whole = pd.api.types.is_float_dtype(col) and bool((col.dropna() % 1 == 0).all())
            txt = (col.astype("Int64") if whole else col).astype(str).astype(object)
            df[c] = txt.where(col.notna(), None)
    return df
