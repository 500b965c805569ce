"""Small command-line defects of the first hour (issue 14, item 10): download continues past a
failure, env shows the package's own caches, embed prints no third-party deprecation notices."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ecgfounder
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


def test_download_prints_no_http_request_lines(stand_in_hub, tmp_path, capsys, caplog):
    """huggingface_hub 2.x talks through httpx2, whose logger said 'HTTP Request: HEAD ... 200 OK' on
    stderr for every request of a download (eight lines for one cut transfer)."""
    import logging

    caplog.set_level(logging.INFO)
    stand_in_hub.files[(weights.HUB_REPO, "1_lead_ECGFounder.pth")] = b"weights of one lead"
    assert main(["download", "1-lead", "--cache-dir", str(tmp_path / "c")]) == 0
    assert any(m == "GET" for m, _ in stand_in_hub.requests)
    said = [r.getMessage() for r in caplog.records] + capsys.readouterr().err.splitlines()
    assert not [line for line in said if "HTTP Request" in line], said


def test_download_all_keeps_order_and_reasons(stand_in_hub, tmp_path):
    stand_in_hub.files[(weights.HUB_REPO, "1_lead_ECGFounder.pth")] = b"x"
    res = weights.download_all(["nope", "1-lead"], cache_dir=tmp_path)
    assert [r[0] for r in res] == ["nope", "1-lead"]
    assert res[0][1] is None and "unknown weights" in res[0][2] and res[1][1].read_bytes() == b"x"


@pytest.mark.slow  # a fresh process (wfdb must be imported during the run): 5-30 s
def test_embed_shows_no_third_party_deprecation_notice(tmp_path, data_dir, tiny_ckpt12):
    """wfdb's first import raises pandas' "inplace keyword ... deprecated" notices; a fresh process
    (so that wfdb is imported during the run) must show none of them, nor keep them as record notes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONWARNINGS", "HF_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(ecgfounder.__file__).parents[1]), env.get("PYTHONPATH")) if p)
    r = subprocess.run([sys.executable, "-m", "ecgfounder", "embed", str(data_dir / "cinc2021" / "HR06000.hea"),
                        "--checkpoint", str(tiny_ckpt12), "-o", str(tmp_path / "e.npy")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "deprecat" not in r.stderr.lower() and "inplace" not in r.stderr
    assert "deprecat" not in (tmp_path / "e.csv").read_text().lower()
    assert np.load(tmp_path / "e.npy").shape[0] == 1


def test_env_shows_the_package_caches_with_sizes(tmp_path, monkeypatch, capsys):
    root = tmp_path / "ecg-cache"
    (root / "windows" / "abc").mkdir(parents=True)
    (root / "windows" / "abc" / "shard.npy").write_bytes(bytes(2_500_000))
    (root / "runtime").mkdir()
    (root / "runtime" / "m.onnx").write_bytes(bytes(1_200))
    monkeypatch.setenv("ECGFOUNDER_CACHE", str(root))
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert f"ecgfounder cache: {root} (2.5 MB; set ECGFOUNDER_CACHE to move it)" in out
    assert "cache/windows: 2.5 MB" in out and "cache/runtime: 1.2 kB" in out
    monkeypatch.setenv("ECGFOUNDER_CACHE", str(tmp_path / "none"))
    assert main(["env"]) == 0
    assert f"{tmp_path / 'none'} (empty" in capsys.readouterr().out


def test_env_says_how_a_gpu_model_is_fed(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setenv("ECGFOUNDER_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["env"]) == 0
    assert "preparation (GPU)" not in capsys.readouterr().out  # no GPU: no such line
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Stand-in GPU")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "Stand-in GPU" in out
    assert "preparation (GPU): 15 worker process(es) (every core but one)" in out


def test_package_errors_that_are_not_value_errors_end_in_one_line(monkeypatch, capsys):
    """Errors of the package's own that are RuntimeErrors (worker processes that cannot start or
    die again on a batch) end a command with exit status 2 and one line, as every other user error."""
    from ecgfounder.cli import env as env_cli
    from ecgfounder.errors import WorkerDiedError, WorkersCannotStartError

    for err, fix in ((WorkersCannotStartError("workers end at start; use workers=0"), "--workers 0"),
                     (WorkerDiedError("caching ... ends its worker process; fewer (data.cache_workers)"), "cache_workers")):
        def boom(*a, _err=err, **k):
            raise _err
        monkeypatch.setattr(env_cli, "environment", boom)
        assert main(["env"]) == 2
        _, stderr = capsys.readouterr()
        assert stderr.startswith("error: ") and fix in stderr and "Traceback" not in stderr


def test_sigterm_ends_a_command_as_ctrl_c_does(tmp_path):
    """A scheduler's or `kill`'s SIGTERM killed the process at once: no progress saved, no resume
    message, spool files left. The command line now treats it as Ctrl-C (exit 130)."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "import ecgfounder.prediction.archive as a\n"
        "def slow(job, **k):\n"
        "    try:\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(60)\n"
        "    finally:\n"
        "        print('cleaned up', flush=True)\n"
        "a.run_archive = slow\n"
        "from ecgfounder.cli import main\n"
        f"sys.exit(main(['predict', {str(tmp_path)!r}, '-o', {str(tmp_path / 'o.csv')!r}, '--checkpoint', 'x.pth']))\n"
    )
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert p.returncode == 130 and "cleaned up" in out and "interrupted" in err, (p.returncode, out, err)
    assert time.monotonic() - t0 < 10
