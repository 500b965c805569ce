"""The preset manifests say their balance: rows, records, patients and each label's positives (or
the target's spread), the extra training windows counted apart."""

from __future__ import annotations

import re

from ecgfounder.cli import main
from ecgfounder.train.presets import build_preset

from _train_helpers import DATA


def test_preset_summary_gives_the_class_balance_of_the_evaluated_windows(capsys, tmp_path):
    df, info = build_preset("cpsc2021", DATA / "cpsc2021", tmp_path, stride_s=5.0)
    grid = df[df.train_only == 0]
    pos = int(grid.AF.sum())
    assert 0 < pos < len(grid)
    assert info["summary"] == (f"{len(grid)} rows of {grid.path.nunique()} records, {grid.patient_id.nunique()} patients "
                               f"(+ {len(df) - len(grid)} extra training windows); "
                               f"AF: {pos} of {len(grid)} positive ({100 * pos / len(grid):.1f} %)")
    hr, info = build_preset("cpsc2021", DATA / "cpsc2021", tmp_path, "hr")
    assert re.search(rf"heart_rate: mean {hr.heart_rate.mean():.1f}, SD {hr.heart_rate.std():.1f}, "
                     rf"{hr.heart_rate.min():.1f}-{hr.heart_rate.max():.1f} \(n = {len(hr)}\)", info["summary"])
    out = tmp_path / "m.csv"
    assert main(["finetune", "manifest", "cpsc2021", str(DATA / "cpsc2021"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"AF: {pos} of {len(grid)} positive" in err  # the command used to print the row count only
