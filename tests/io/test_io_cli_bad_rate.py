"""Issue 11 bar: `predict` on 5 good records plus one whose header states 1e-6 Hz writes the 5 rows,
with one clean line for the bad file and no traceback."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "cinc2021"


def test_predict_writes_the_good_rows_beside_a_1e_minus_6_hz_record(tmp_path, capsys):
    from ecgfounder.cli import main
    from ecgfounder.models.loading import save_model
    from ecgfounder.models.net1d import Net1D, Net1DConfig

    model = Net1D(Net1DConfig(base_filters=8, filter_list=(16, 16), m_blocks_list=(1, 1), groups_width=8))
    weights = save_model(model, tmp_path / "tiny.safetensors")
    recs = tmp_path / "recs"
    recs.mkdir()
    for k in (0, 1, 2, 3, 4, 9):
        for ext in (".hea", ".mat"):
            shutil.copy(DATA / f"E0750{k}{ext}", recs / f"E0750{k}{ext}")
    bad = recs / "E07509.hea"
    lines = bad.read_text().splitlines()
    head = lines[0].split()
    head[2] = "1e-6"
    lines[0] = " ".join(head)
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    code = main(["predict", str(recs), "--weights", str(weights), "-o", str(out)])
    captured = capsys.readouterr()
    assert code != 0 and "Traceback" not in captured.out + captured.err
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 and all("E07509" not in str(r) for r in rows)
    assert "E07509.hea" in captured.err and "sampling rate 1e-6 Hz" in captured.err
