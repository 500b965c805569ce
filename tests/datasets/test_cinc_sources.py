"""CinC 2021 ground truth per source database: a finding a source never coded is not evaluable
on its records (CPSC 2018 labelled 9 classes), never a negative."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ecgfounder.datasets import load_cinc2021

CINC = Path(__file__).resolve().parents[1] / "data" / "cinc2021"
LABELS = Path(__file__).resolve().parents[1] / "data" / "eval" / "labels"  # the challenge's tables


def _folder(tmp_path, dx: dict[str, str]) -> Path:
    """Headers of a real CinC record (E07509) under other names and Dx lines."""
    lines = [ln for ln in (CINC / "E07509.hea").read_text().splitlines() if not ln.startswith("# Dx")]
    root = tmp_path / "cinc"
    root.mkdir()
    for name, codes in dx.items():
        first = lines[0].replace("E07509", name, 1)
        (root / f"{name}.hea").write_text("\n".join([first, *lines[1:], f"# Dx: {codes}"]) + "\n")
    return root


def test_unassessed_findings_are_not_negatives(tmp_path):
    # A0001: CPSC 2018 (AF, RBBB, ... only); E0001: Georgia; X0001: a source the package does not know
    root = _folder(tmp_path, {"A0001": "164889003", "A0002": "59118001,39732003", "E0001": "164889003", "X0001": "164889003"})
    ls = load_cinc2021(root)
    col, row = ls.labels.index, ls.records.index
    lad, af, sb = col("LEFT AXIS DEVIATION"), col("ATRIAL FIBRILLATION"), col("SINUS BRADYCARDIA")
    assert not ls.evaluable[row("A0001"), lad] and not ls.evaluable[row("A0001"), sb]  # used to be negatives
    assert ls.evaluable[row("A0001"), af] and ls.evaluable[row("E0001"), lad] and ls.evaluable[row("X0001")].all()
    assert ls.y[row("A0002"), lad] and ls.evaluable[row("A0002"), lad]  # a positive always counts
    old = load_cinc2021(root, source_vocabulary=False)  # the challenge's convention, on request
    assert old.evaluable.all() and (old.y == ls.y).all()


def test_source_codes_match_the_challenge_table():
    from ecgfounder.datasets.cinc2021 import SOURCES, source_codes

    counts = pd.concat([pd.read_csv(LABELS / f"snomed_dx_mapping_{k}.csv", dtype={"SNOMEDCTCode": str})
                        for k in ("scored", "unscored")]).set_index("SNOMEDCTCode")
    got = source_codes()
    assert set(got) == set(SOURCES)
    assert got["A"] == set(counts.index[counts["CPSC"] > 0]) and len(got["A"]) == 9
    assert got["JS"] == set(counts.index[(counts["Chapman_Shaoxing"] > 0) | (counts["Ningbo"] > 0)])
    assert "39732003" in got["E"] and "39732003" not in got["A"]  # left axis deviation
