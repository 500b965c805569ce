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


def test_manifest_leaves_classes_a_source_never_assessed_empty(tmp_path):
    """The fine-tuning manifest: an empty cell exactly where the record's source database used none
    of the class's codes (the challenge's counts per source) and the record does not carry it."""
    import warnings

    import numpy as np

    from ecgfounder.datasets.cinc2021 import CINC2021_SCORED, cinc2021_manifest, scan
    from ecgfounder.train.manifest import read_manifest, write_manifest

    counts = pd.read_csv(LABELS / "snomed_dx_mapping_scored.csv", dtype={"SNOMEDCTCode": str}).set_index("SNOMEDCTCode")
    columns = {"E": ["Georgia"], "HR": ["PTB_XL"], "JS": ["Chapman_Shaoxing", "Ningbo"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB-XL records without patient ids
        man = cinc2021_manifest(CINC)
    carried = scan(CINC).set_index("record")["dx"].map(lambda dx: {CINC2021_SCORED.get(c) for c in dx})
    classes = [c for c in man.columns if c not in ("path", "record", "source", "patient_id")]
    expect = np.zeros((len(man), len(classes)), dtype=bool)
    for i, (rec, src) in enumerate(zip(man["record"], man["source"])):
        for j, c in enumerate(classes):
            members = [code for code, k in CINC2021_SCORED.items() if k == c]
            expect[i, j] = not (counts.loc[members, columns[src]] > 0).to_numpy().any() and c not in carried[rec]
    assert (man[classes].isna().to_numpy() == expect).all()
    assert expect[man["source"] == "HR"][:, classes.index("PVC")].all() and not expect[man["source"] == "JS"].any()
    # source vocabularies off: 0/1 everywhere, as the manifest always was; on: the same where assessed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = cinc2021_manifest(CINC, source_vocabulary=False)
    assert all(str(t) == "int64" for t in old[classes].dtypes)
    assert (man[classes].fillna(0).astype(int) == old[classes]).all().all()
    # written and read back: empty cells, NaN for training
    back = read_manifest(write_manifest(man, tmp_path / "m.csv"))
    assert (back[classes].isna().to_numpy() == expect).all()
    assert ",," in (tmp_path / "m.csv").read_text().splitlines()[1 + int(np.flatnonzero(expect.any(1))[0])]
    # a CPSC 2018 record: LAD is empty unless the record carries it; AF (which CPSC labelled) is 0/1
    root = _folder(tmp_path, {"A0001": "164889003", "A0002": "39732003", "E0001": "164889003"})
    cpsc = cinc2021_manifest(root).set_index("record")
    assert pd.isna(cpsc.loc["A0001", "LAD"]) and cpsc.loc["A0002", "LAD"] == 1 and cpsc.loc["E0001", "LAD"] == 0
    assert cpsc.loc["A0002", "AF"] == 0
