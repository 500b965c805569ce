"""``ecgfounder serve``: registered, documented, and its errors name the flags."""

from __future__ import annotations

import pytest

from ecgfounder.cli import main


def test_serve_help_and_flag_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--weights", "--checkpoint", "--host", "--port", "--token", "--max-upload-mb", "--mcp"):
        assert flag in out
    assert main(["serve", "--max-queue", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--max-queue" in err and "max_queue" not in err
    assert main(["serve", "--threshold", "1.5"]) == 2
    assert "--threshold" in capsys.readouterr().err
