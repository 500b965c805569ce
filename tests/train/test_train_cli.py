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
