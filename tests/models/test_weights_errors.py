"""The published-weights messages name the library's way (``model=``, ``load_model``) beside the
command line's (``--checkpoint``); an unknown name is a SetupError that is still a ValueError."""

from __future__ import annotations

import pytest

from ecgfounder.cli import main
from ecgfounder.cli._common import flags
from ecgfounder.errors import ECGFounderError, SetupError, WeightsDownloadError
from ecgfounder.models import weights


@pytest.mark.parametrize("lookup", [weights.download_weights, weights.cached_weights])
def test_unknown_weights_name_is_a_setup_error(lookup):
    with pytest.raises(SetupError) as err:
        lookup("13-lead")
    msg = str(err.value)
    assert isinstance(err.value, ValueError) and err.value.argument == "name"
    assert "'13-lead'" in msg and "1-lead, 12-lead" in msg and "model=path (CLI: --checkpoint FILE)" in msg


def test_download_command_prints_the_unknown_name_in_one_line(capsys):
    assert main(["download", "13-lead"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("error: 13-lead: unknown weights '13-lead'; known: 1-lead, 12-lead")


def test_offline_message_names_model_and_the_checkpoint_flag(tmp_path, monkeypatch):
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsDownloadError) as err:
        weights.download_weights("12-lead", cache_dir=tmp_path / "empty")
    msg = str(err.value)
    assert isinstance(err.value, ECGFounderError) and isinstance(err.value, OSError)
    assert "load_model('./12_lead_ECGFounder.pth')" in msg
    assert "model='./12_lead_ECGFounder.pth' (CLI: --checkpoint ./12_lead_ECGFounder.pth)" in msg
    cli = flags(msg)  # what the command line prints: flags only, no library call
    assert "load it from there: --checkpoint ./12_lead_ECGFounder.pth." in cli
    assert "model=" not in cli and "(CLI:" not in cli and "load_model" not in cli


def test_download_command_offline_speaks_in_flags_only(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    assert main(["download", "12-lead", "--cache-dir", str(tmp_path / "empty")]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "--checkpoint ./12_lead_ECGFounder.pth" in err[0]
    assert "load_model" not in err[0] and "model=" not in err[0]
    assert flags(weights._unknown_message("13-lead")).endswith("load it with --checkpoint FILE).")


def test_load_model_of_an_unknown_name_is_a_setup_error_naming_the_choices(tmp_path, monkeypatch):
    from ecgfounder.errors import SetupError
    from ecgfounder.models.loading import load_model

    monkeypatch.chdir(tmp_path)  # (no file of that name here)
    with pytest.raises(SetupError, match=r"unknown weights '13-lead'.*12-lead, 1-lead.*checkpoint path") as info:
        load_model("13-lead")
    assert isinstance(info.value, ValueError) and info.value.argument == "model"


def test_an_impossible_precision_keeps_the_argument_the_runner_named():
    from ecgfounder.errors import SetupError
    from ecgfounder.prediction.setup import check_inference

    with pytest.raises(SetupError, match="unknown precision='fp64'") as info:
        check_inference("fp64", "torch", "cpu")
    assert info.value.argument == "precision"  # (was re-raised as the backend's fault)


def test_convert_of_a_name_offline_names_the_convert_command(tmp_path, monkeypatch, capsys):
    """`ecgfounder convert 12-lead --to safetensors` offline said to pass --checkpoint, a flag convert lacks."""
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(tmp_path / "empty"))
    assert main(["convert", "12-lead", "--to", "safetensors"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "--checkpoint" not in err[0], err
    assert "convert it from there: ecgfounder convert ./12_lead_ECGFounder.pth --to safetensors." in err[0], err


def test_convert_of_a_name_needs_no_to(tmp_path, monkeypatch, capsys):
    """`ecgfounder convert 12-lead` was taken for an ECG record: '--to is required for ECG records'."""
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(tmp_path / "empty"))
    assert main(["convert", "1-lead"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "could not download the 1-lead ECGFounder weights" in err[0], err
