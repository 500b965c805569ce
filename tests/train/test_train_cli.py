import pandas as pd
import yaml

from ecgfounder.cli import main

from _train_helpers import DATA


def test_show_with_overrides(capsys):
    rc = main(["finetune", "show", "cpsc2021_af_lead1_scratch", "data.root=/x", "train.epochs=3",
               "optim.schedule_steps=500"])
    assert rc == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["train"]["epochs"] == 3 and cfg["data"]["preset"] == "cpsc2021"
    assert cfg["optim"]["schedule_steps"] == 500


def test_unknown_key_is_an_error(capsys):
    rc = main(["finetune", "show", "cpsc2021_af_lead1_scratch", "data.root=/x", "train.epoks=3"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "train.epoks" in err and "epochs" in err


def test_manifest_and_examples(tmp_path, capsys):
    out = tmp_path / "m.csv"
    assert main(["finetune", "manifest", "cpsc2021", str(DATA / "cpsc2021"), "-o", str(out)]) == 0
    df = pd.read_csv(out)
    assert {"path", "patient_id", "start_s", "duration_s", "AF"} <= set(df.columns)
    assert main(["finetune", "examples"]) == 0
    listing = capsys.readouterr().out
    assert "ptbxl_superdiagnostic_finetune" in listing and "mimic_lvef_regression" in listing


def test_cache_command_fills_the_window_cache_and_counts_failures(tmp_path, cpsc2021_manifest, capsys):
    df = pd.read_csv(cpsc2021_manifest).head(3)
    df.loc[len(df)] = {**df.iloc[0].to_dict(), "path": str(tmp_path / "missing.hea"), "record": "missing"}
    df.to_csv(tmp_path / "m.csv", index=False)
    cfg = {"data": {"manifest": str(tmp_path / "m.csv"), "leads": 1, "cache_dir": str(tmp_path / "cache"),
                    "cache_workers": 1}, "model": {"init": "random", "arch": "small"}, "train": {"progress": False}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["finetune", "cache", str(tmp_path / "c.yaml")]) == 0
    assert capsys.readouterr().err.strip().endswith(": 3 cached, 1 failed")
    assert list((tmp_path / "cache").rglob("shard-*.npy"))


def test_bad_values_are_named_by_their_configuration_keys(capsys):
    """The command line's flag wording (``--batch-size``) is for the other commands: a finetune
    setting is printed as it is given, section.key=value (it read ``train.--batch-size 0``)."""
    for override, shown in (("train.batch_size=0", "train.batch_size=0 must be >= 1"),
                            ("train.device=gpu", "train.device='gpu' is not valid"),
                            ("output.resume=nope", "output.resume=nope: checkpoint not found")):
        rc = main(["finetune", "run", "cpsc2021_af_lead1_scratch", "data.root=/x", override])
        err = capsys.readouterr().err
        assert rc == 2 and shown in err and "--" not in err, err


def test_the_interrupt_note_names_the_setting_as_written():
    from ecgfounder.cli._common import flags

    note = "interrupted: the run goes on from its last checkpoint, when the same command is run again (output.resume=auto)."
    assert flags(note) == note
    assert flags("backend='onnxruntime' runs on the CPU only; got device='cuda:1'.") == \
        "--backend onnxruntime runs on the CPU only; got --device cuda:1."


def _offline(monkeypatch):
    """The published weights cannot be downloaded (the machine is offline); returns the calls."""
    import ecgfounder.models.loading as loading
    from ecgfounder.errors import WeightsDownloadError
    from ecgfounder.models.weights import KNOWN_WEIGHTS, _offline_message

    calls = []

    def load_model(name, **kw):
        calls.append(name)
        raise WeightsDownloadError(_offline_message(KNOWN_WEIGHTS["12-lead"], "the Hub could not be reached"))

    monkeypatch.setattr(loading, "load_model", load_model)
    return calls


def test_offline_weights_name_the_finetune_setting(monkeypatch, tmp_path, cpsc2021_manifest, capsys):
    """The weights' download error told a finetune user to pass predict's --checkpoint flag (it read
    "load it from there: --checkpoint ./12_lead_ECGFounder.pth"): here it is model.init."""
    _offline(monkeypatch)
    rc = main(["finetune", "run", "cpsc2021_af_lead1_scratch", f"data.manifest={cpsc2021_manifest}", "data.preset=null",
               "model.init=12-lead", "model.arch=released", "data.leads=null", "data.train_stride_s=null",
               f"output.dir={tmp_path / 'run'}", "data.test_patients=[]"])
    err = capsys.readouterr().err
    assert rc == 2 and "load it from there: model.init=./12_lead_ECGFounder.pth." in err and "--checkpoint" not in err, err


def test_missing_data_is_said_before_the_weights_are_fetched(monkeypatch, tmp_path, capsys):
    """A wrong data.root (or data.manifest) was found only after the start weights were fetched (a
    353 MB download, or its failure offline, said first)."""
    calls = _offline(monkeypatch)
    for setting, shown in (("data.root=/no/such/ptb-xl", "error: data.root=/no/such/ptb-xl: no such folder; give the "
                                                          "ptbxl dataset folder."),
                           ("data.manifest=/no/such.csv", "error: data.manifest=/no/such.csv: no such file")):
        extra = ["data.preset=null"] if setting.startswith("data.manifest") else []
        rc = main(["finetune", "run", "ptbxl_superdiagnostic_finetune", setting, *extra, f"output.dir={tmp_path / 'r'}"])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith(shown), err
    rc = main(["finetune", "cache", "ptbxl_superdiagnostic_finetune", "data.manifest=/no/such.csv", "data.preset=null"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: manifest /no/such.csv not found"), err
    assert calls == []
