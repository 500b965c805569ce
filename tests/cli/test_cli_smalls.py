"""Small command-line defects of the first hour (issue 14, item 10): download continues past a
failure, env shows the package's own caches, embed prints no third-party deprecation notices."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ecgfounder.cli import main
from ecgfounder.models import weights


def test_download_continues_past_a_failure_and_reports_all(stand_in_hub, monkeypatch, tmp_path, capsys):
    # the stand-in serves the 1-lead file but not the 12-lead one; "3-lead" is no known name
    stand_in_hub.files[(weights.HUB_REPO, "1_lead_ECGFounder.pth")] = b"weights of one lead"
    code = main(["download", "12-lead", "3-lead", "1-lead", "--cache-dir", str(tmp_path / "c")])
    out, err = capsys.readouterr()
    assert code == 2
    assert out.strip().endswith("1_lead_ECGFounder.pth") and len(out.strip().splitlines()) == 1
    assert "error: 12-lead:" in err and "error: 3-lead: unknown weights" in err
    assert "2 of 3 download(s) failed: 12-lead, 3-lead" in err
    assert "Traceback" not in err


def test_download_all_keeps_order_and_reasons(stand_in_hub, tmp_path):
    stand_in_hub.files[(weights.HUB_REPO, "1_lead_ECGFounder.pth")] = b"x"
    res = weights.download_all(["nope", "1-lead"], cache_dir=tmp_path)
    assert [r[0] for r in res] == ["nope", "1-lead"]
    assert res[0][1] is None and "unknown weights" in res[0][2] and res[1][1].read_bytes() == b"x"


def test_embed_prints_record_warnings_but_not_deprecation_notices(tmp_path, data_dir, monkeypatch, capsys):
    import ecgfounder.prediction as prediction
    from ecgfounder.models.loading import save_model
    from ecgfounder.models.net1d import Net1D, Net1DConfig

    model = Net1D(Net1DConfig(in_channels=12, n_classes=150, base_filters=8, filter_list=(16, 32), m_blocks_list=(1, 1)))
    ckpt = save_model(model, tmp_path / "small.safetensors")
    real = prediction.embed

    def embed(*args, **kwargs):  # a dependency's deprecation notice on first use, and a note about a record
        warnings.warn("The inplace keyword in DataFrame.set_index is deprecated", DeprecationWarning)
        warnings.warn("HR06000: a note about this record", UserWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(prediction, "embed", embed)
    code = main(["embed", str(data_dir / "cinc2021" / "HR06000.hea"), "--weights", str(ckpt), "-o", str(tmp_path / "e.npy")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "a note about this record" in err
    assert "deprecated" not in err and "inplace" not in err
    assert np.load(tmp_path / "e.npy").shape == (1, 32)
