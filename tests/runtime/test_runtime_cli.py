"""``ecgfounder export`` and ``ecgfounder env`` as an operator meets them: inputs never overwritten,
no cut file left by a full disk, and a cache setting that cannot work said so."""

from __future__ import annotations

import argparse
import errno
import os

import pytest

from ecgfounder.cli import export as cli_export


@pytest.fixture
def export_cli():
    parser = argparse.ArgumentParser()
    cli_export.add_parser(parser.add_subparsers())

    def call(*argv: str) -> int:
        args = parser.parse_args(["export", *argv])
        return args.func(args)
    return call


def test_export_refuses_to_overwrite_its_checkpoint(tiny, tmp_path, export_cli):
    from ecgfounder.errors import SetupError
    from ecgfounder.models.loading import save_model

    ckpt = save_model(tiny, tmp_path / "tiny.safetensors")
    before = ckpt.read_bytes()
    os.link(ckpt, tmp_path / "same.pt")  # the same file under another name
    for out in (ckpt, tmp_path / "." / "tiny.safetensors", tmp_path / "same.pt"):
        with pytest.raises(SetupError, match=r"is the file given to --checkpoint .*would overwrite it"):
            export_cli("--checkpoint", str(ckpt), "-o", str(out))
    assert ckpt.read_bytes() == before


def test_export_int8_for_openvino_leaves_no_cut_file_on_a_full_disk(tiny, tmp_path, data_dir, export_cli,
                                                                   monkeypatch):
    """A graph with no pad to move is copied to -o: through a temporary name, so a full disk leaves
    the previous export whole (it left half a file under -o)."""
    import shutil

    import numpy as np

    import ecgfounder.prediction.records as records
    import ecgfounder.runtime as runtime
    import ecgfounder.runtime.graphs as graphs
    import ecgfounder.runtime.openvino as ov
    from ecgfounder.models.loading import save_model

    ckpt = save_model(tiny, tmp_path / "tiny.safetensors")
    monkeypatch.setattr(runtime, "export_onnx", lambda model, path: path.write_bytes(b"graph") and path)
    monkeypatch.setattr(records, "calibration_windows", lambda files, contract, n: np.zeros((2, 12, 5000), np.float32))
    monkeypatch.setattr(graphs, "quantize_int8", lambda src, out, wins: out.write_bytes(b"qdq") and out)
    monkeypatch.setattr(ov, "write_openvino_int8", lambda src, dst: 0)  # nothing to move

    def full_disk(src, dst, *a, **k):
        with open(dst, "wb") as fh:
            fh.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    out = tmp_path / "q.onnx"
    out.write_bytes(b"the previous export")
    record = sorted((data_dir / "cinc2021").glob("*.hea"))[0]
    with pytest.raises(OSError, match="No space left"):
        export_cli("--checkpoint", str(ckpt), "-o", str(out), "--int8", "--runtime", "openvino",
                   "--calibrate", str(record))
    assert out.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.onnx", "tiny.json", "tiny.safetensors"]


def test_env_says_a_cache_setting_that_is_a_file(tmp_path, monkeypatch):
    from ecgfounder.cli.env import package_caches

    blocker = tmp_path / "cache"
    blocker.write_text("")
    monkeypatch.setenv("ECGFOUNDER_CACHE", str(blocker))
    line = package_caches()["ecgfounder cache"]
    assert line == f"{blocker} (a file, not a folder: nothing can be cached; set ECGFOUNDER_CACHE to a folder)"
