"""Safe, strict checkpoint loading; our safetensors format; downloads through a stand-in Hub."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgfounder.errors import CheckpointError, WeightsDownloadError
from ecgfounder.labels import load_labels
from ecgfounder.models import loading, weights
from ecgfounder.models.loading import convert_checkpoint, load_model, save_model
from ecgfounder.models.net1d import Net1DConfig
from ecgfounder.testing import TINY_CONFIG, build_synthetic_checkpoint, synthetic_state_dict
from hub_server import FakeHub

X = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 12, 5000)).astype(np.float32))
# The loader's behaviour does not depend on the widths: most tests use small weights in the
# published format (a torch.save'd dict with numpy scalars), not the 30.8 M-parameter model.
TINY12 = Net1DConfig(in_channels=12, **TINY_CONFIG)
TINY1 = Net1DConfig(in_channels=1, **TINY_CONFIG)


def tiny_sd(n_leads: int = 12) -> dict:
    return synthetic_state_dict(n_leads, config=TINY12 if n_leads == 12 else TINY1)


@pytest.fixture(scope="module")
def pth12(tmp_path_factory) -> Path:
    return build_synthetic_checkpoint(tmp_path_factory.mktemp("pth") / "12_lead_ECGFounder.pth", 12, config=TINY12)


@pytest.fixture(scope="module")
def pth1(tmp_path_factory) -> Path:
    return build_synthetic_checkpoint(tmp_path_factory.mktemp("pth") / "1_lead_ECGFounder.pth", 1, config=TINY1)


@pytest.fixture(scope="module")
def m12(pth12):
    return load_model(pth12)


def _logits(model, x=X):
    with torch.no_grad():
        return model(x)


def test_published_format_loads_strictly_with_numpy_scalars(ckpt12, model12):
    raw = torch.load(ckpt12, weights_only=False)  # test-side inspection of our own file
    assert isinstance(raw["step"], np.int64) and isinstance(raw["val_auroc"], np.float64)
    assert model12.labels == load_labels() and len(model12.labels) == 150
    assert model12.contract.leads[0] == "I" and model12.contract.mode == "published"
    assert not model12.training


def test_plain_weights_only_load_refuses_numpy_scalars(pth12):
    """Why the allow-list is needed: the published format has numpy scalars beside the weights."""
    with pytest.raises(pickle.UnpicklingError):
        torch.load(pth12, weights_only=True)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [False, True])
def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path, legacy):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pth"
    payload = {"state_dict": tiny_sd(1), "hook": _Evil(marker)}
    if legacy:
        with open(bad, "wb") as f:
            pickle.dump(payload, f)
    else:
        torch.save(payload, bad)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match=r"evil\.pth: refused to load") as err:
        load_model(bad)
    if not legacy:
        assert "system" in str(err.value)  # the offending global is named
    assert not marker.exists()


def test_corrupt_and_empty_files(tmp_path, pth12):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_model(empty)
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(pth12.read_bytes()[:20_000])
    with pytest.raises(CheckpointError, match="trunc.pth"):
        load_model(trunc)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="known name"):
        load_model("13-lead")


def test_unwraps_module_prefix_and_nesting(tmp_path, m12):
    sd = {f"module.{k}": v for k, v in tiny_sd(12).items()}
    p = tmp_path / "ddp.pt"
    torch.save({"model": {"state_dict": sd}}, p)
    m = load_model(p)
    assert torch.equal(_logits(m), _logits(m12))


def test_two_different_networks_nested_in_one_checkpoint_are_refused_not_picked(tmp_path, m12):
    """{'state_dict': A, 'model': B} loaded A by the order of a key list, without a word; the same
    network kept twice, or a config dict under 'model' beside the weights, still load."""
    a, b = tiny_sd(12), synthetic_state_dict(12, seed=1, config=TINY12)
    p = tmp_path / "two.pth"
    torch.save({"state_dict": a, "model": {"state_dict": b}}, p)
    with pytest.raises(CheckpointError, match=r"two\.pth: holds different networks' weights under 'state_dict' and "
                                              r"'model'; which to load is not guessed.*torch\.save\(ckpt\['state_dict'\]"):
        load_model(p)
    for ckpt in ({"state_dict": a, "model": {k: v.clone() for k, v in a.items()}},
                 {"model": {"name": "net1d", "leads": 12}, "state_dict": a}):
        torch.save(ckpt, p)
        assert torch.equal(_logits(load_model(p)), _logits(m12))


def test_strict_mismatch_names_keys(tmp_path):
    sd = tiny_sd(12)
    sd.pop("stage_list.1.block_list.0.se_fc2.bias")
    sd["extra.weight"] = torch.zeros(3)
    p = tmp_path / "bad.pth"
    torch.save({"state_dict": sd}, p)
    with pytest.raises(CheckpointError, match=r"missing keys: stage_list\.1\.block_list\.0\.se_fc2\.bias.*unexpected keys: extra\.weight"):
        load_model(p)
    m = load_model(p, strict=False)  # explicit opt-out loads what fits
    assert m.num_classes == 150


def test_shape_mismatch_is_reported(tmp_path):
    sd = tiny_sd(12)
    sd["stage_list.0.block_list.0.se_fc1.weight"] = torch.zeros(7, 16)
    p = tmp_path / "shape.pth"
    torch.save({"state_dict": sd}, p)
    with pytest.raises(CheckpointError, match="shapes"):
        load_model(p)


def test_safetensors_round_trip(tmp_path, pth12, m12):
    out = convert_checkpoint(pth12, tmp_path / "ecgfounder-12.safetensors")
    assert out.exists() and out.with_suffix(".json").exists()
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file mode, not the temporary's 0600
    m = load_model(out)
    assert torch.equal(_logits(m), _logits(m12))
    assert m.labels == m12.labels and m.contract == m12.contract
    assert m.source["sha256"] == weights.sha256_file(pth12)
    # a fine-tuned-style head carries its own labels and task
    m.reset_classifier(2, labels=["AF", "not AF"])
    m.task_meta = {"task": "multiclass"}
    p2 = save_model(m, tmp_path / "ft")
    m2 = load_model(p2)
    assert m2.labels == ("AF", "not AF") and m2.task_meta["task"] == "multiclass" and m2.num_classes == 2


def test_non_150_head_without_labels_is_refused_for_prediction(tmp_path, data_dir):
    from ecgfounder.prediction import predict

    sd = tiny_sd(12)
    sd["dense.weight"] = sd["dense.weight"][:7]
    sd["dense.bias"] = sd["dense.bias"][:7]
    p = tmp_path / "seven.pth"
    torch.save({"state_dict": sd}, p)
    m = load_model(p)
    assert m.num_classes == 7 and m.labels == ()
    with pytest.raises(ValueError, match="7 outputs"):
        predict([data_dir / "cinc2021" / "HR06000.hea"], m)


def test_cli_convert_checkpoint(tmp_path, pth1):
    from ecgfounder.cli import main

    out = tmp_path / "one.safetensors"
    assert main(["convert", str(pth1), "--to", "safetensors", "-o", str(out)]) == 0
    assert load_model(out).config.in_channels == 1


# --- downloads through a local stand-in for the Hub -------------------------------------------


def _run_cli(args, env_extra, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "ecgfounder", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.mark.slow  # fresh interpreters (~3 s): HF_ENDPOINT and HF_HOME are read when huggingface_hub is
# imported; the in-process tests below (local_hub) patch what they set, corrupt downloads included
def test_download_via_hf_endpoint_and_corrupt_download(tmp_path, pth1, pth12, data_dir):
    with FakeHub() as hub:
        hub.add(weights.HUB_REPO, "1_lead_ECGFounder.pth", pth1)
        # The 12-lead file served here is not the published one: its SHA-256 cannot match.
        hub.add(weights.HUB_REPO, "12_lead_ECGFounder.pth", pth12)
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf")}
        r = _run_cli(["predict", str(data_dir / "cinc2021" / "HR06000.hea"), "--weights", "1-lead",
                      "-o", str(tmp_path / "p.csv"), "-q"], env, tmp_path)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "p.csv").read_text().count("\n") == 2
        cached = list((tmp_path / "hf").rglob("1_lead_ECGFounder.pth"))
        assert cached, "downloaded into the standard Hugging Face cache"
        assert any(m == "GET" for m, _ in hub.requests)

        r = _run_cli(["download", "12-lead"], env, tmp_path)
        assert r.returncode == 2
        assert "corrupt" in r.stderr and "SHA-256" in r.stderr and "Traceback" not in r.stderr
        assert not [p for p in (tmp_path / "hf").rglob("12_lead_ECGFounder.pth") if p.is_file()]


@pytest.fixture
def local_hub(pth12, monkeypatch):
    """A stand-in Hub serving the 12-lead test checkpoint, registered as the known 12-lead weights
    with its true hash; huggingface_hub in this process is pointed at it."""
    import huggingface_hub.constants as hfc

    good = weights.KnownWeights("12-lead", weights.HUB_REPO, "12_lead_ECGFounder.pth", FakeHub.COMMIT,
                                weights.sha256_file(pth12), 12)
    monkeypatch.setitem(weights.KNOWN_WEIGHTS, "12-lead", good)
    with FakeHub() as hub:
        hub.add(weights.HUB_REPO, "12_lead_ECGFounder.pth", pth12)
        monkeypatch.setattr(hfc, "ENDPOINT", hub.url)
        monkeypatch.setattr(hfc, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        yield hub, good


def test_download_hash_verified_in_process(tmp_path, local_hub):
    hub, good = local_hub
    assert weights.cached_weights("12-lead", cache_dir=tmp_path / "c") is None  # what `ecgfounder env` shows
    path = weights.download_weights("12-lead", cache_dir=tmp_path / "c")
    assert weights.sha256_file(path) == good.sha256
    seen = len(hub.requests)
    assert weights.cached_weights("12-lead", cache_dir=tmp_path / "c") == path and len(hub.requests) == seen
    # a damaged transfer of the same file is detected and removed
    hub.corrupt.add("12_lead_ECGFounder.pth")
    with pytest.raises(WeightsDownloadError, match="corrupt"):
        weights.download_weights("12-lead", cache_dir=tmp_path / "c2", force=True)


def test_offline_message_is_actionable(tmp_path, monkeypatch, capsys):
    """``predict`` offline with no cached weights: one actionable line (the file, where to get it,
    ``--checkpoint``), exit code 2, no traceback.  HF_HUB_OFFLINE and HF_HOME as huggingface_hub
    reads them at import (in this process: its constants)."""
    import huggingface_hub.constants as hfc

    from ecgfounder.cli import main

    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.hea").write_text("x 12 500 5000\n")  # an input that exists: the weights are the problem
    assert main(["predict", "x.hea", "-o", "o.csv"]) == 2
    msg = capsys.readouterr().err
    assert "12_lead_ECGFounder.pth" in msg and "--checkpoint" in msg and "huggingface.co" in msg
    assert "HF_HUB_OFFLINE is set" in msg and "Traceback" not in msg and len(msg.strip().splitlines()) == 1
    assert not (tmp_path / "o.csv").exists()


def test_no_dns_answers_from_the_cache_at_once(tmp_path, local_hub, monkeypatch):
    """Offline (no DNS): no 30-s retry loop; a cached file is used, a missing one is reported."""
    import socket

    hub, _ = local_hub
    first = weights.download_weights("12-lead", cache_dir=tmp_path / "c")
    seen = len(hub.requests)

    def no_dns(*args, **kwargs):
        raise socket.gaierror("Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert weights.download_weights("12-lead", cache_dir=tmp_path / "c") == first
    with pytest.raises(WeightsDownloadError, match="could not be reached"):
        weights.download_weights("12-lead", cache_dir=tmp_path / "empty")
    assert len(hub.requests) == seen  # nothing was asked of the (unreachable) Hub


@pytest.mark.parametrize("code", ["ENOSPC", "EACCES", "EROFS"])
def test_cache_not_writable_says_so(tmp_path, local_hub, monkeypatch, code):
    """A full disk or a read-only cache (simulated: root ignores file modes) is not a network
    problem: the message names the cache and the fix, not 'download it on a machine with network'."""
    import errno

    import huggingface_hub.file_download as fd

    def fail(*args, **kwargs):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    monkeypatch.setattr(fd, "http_get", fail)
    with pytest.raises(WeightsDownloadError) as exc:
        weights.download_weights("12-lead", cache_dir=tmp_path / "c")
    msg = str(exc.value)
    assert str(tmp_path / "c") in msg and os.strerror(getattr(errno, code)) in msg and "HF_HOME" in msg, msg
    assert "network access" not in msg
    assert not list((tmp_path / "c").rglob("12_lead_ECGFounder.pth"))  # nothing left as if good


def test_hf_hub_offline_is_named(tmp_path, local_hub, monkeypatch):
    """With HF_HUB_OFFLINE set, a cached file is used without asking the Hub; a missing one says
    that offline mode is on (the fix is to unset it), not that the Hub could not be reached."""
    import huggingface_hub.constants as hfc

    hub, _ = local_hub
    first = weights.download_weights("12-lead", cache_dir=tmp_path / "c")
    seen = len(hub.requests)
    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    assert weights.download_weights("12-lead", cache_dir=tmp_path / "c") == first
    with pytest.raises(WeightsDownloadError, match="HF_HUB_OFFLINE is set .unset it to download."):
        weights.download_weights("12-lead", cache_dir=tmp_path / "empty")
    assert len(hub.requests) == seen


# -- hostile or broken checkpoints: each a CheckpointError naming what is wrong ----------------------------------


def test_folder_given_as_checkpoint(tmp_path):
    folder = tmp_path / "weights.pth"
    folder.mkdir()
    with pytest.raises(CheckpointError, match=r"weights\.pth: is a folder"):
        load_model(folder)


def test_compile_and_ddp_prefixes_in_either_order(tmp_path, m12):
    for prefix in ("_orig_mod.module.", "module._orig_mod."):
        p = tmp_path / "wrapped.pt"
        torch.save({"model_state_dict": {prefix + k: v for k, v in tiny_sd(12).items()}}, p)
        assert torch.equal(_logits(load_model(p)), _logits(m12))


@pytest.mark.parametrize("change, match", [
    (lambda sd: sd.pop("stage_list.0.block_list.0.conv2.conv.weight"), r"lacks 'stage_list\.0\.block_list\.0\.conv2"),
    (lambda sd: sd.update({"first_conv.conv.weight": torch.tensor(1.0)}), r"shapes do not describe a Net1D"),
    (lambda sd: sd.pop("dense.weight"), r"missing keys: dense\.weight;"),
])
def test_incomplete_or_misshapen_state_dict(tmp_path, change, match):
    sd = tiny_sd(12)
    change(sd)
    p = tmp_path / "broken.pth"
    torch.save({"state_dict": sd}, p)
    with pytest.raises(CheckpointError, match=match):
        load_model(p)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_or_boolean_weights_are_refused(tmp_path, dtype):
    sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in tiny_sd(12).items()}
    p = tmp_path / "ints.pth"
    torch.save({"state_dict": sd}, p)
    with pytest.raises(CheckpointError, match=rf"tensor types .*first_conv\.conv\.weight is {dtype}"):
        load_model(p)


def test_float64_weights_load_unless_they_overflow_float32(tmp_path, m12):
    sd = {k: (v.double() if v.is_floating_point() else v) for k, v in tiny_sd(12).items()}
    p = tmp_path / "f64.pth"
    torch.save({"state_dict": sd}, p)
    torch.testing.assert_close(_logits(load_model(p)), _logits(m12))
    sd["dense.bias"][3] = 1e300  # finite in float64, infinite once loaded into the float32 model
    torch.save({"state_dict": sd}, p)
    with pytest.raises(CheckpointError, match=r"dense\.bias \(torch\.float64\) overflows torch\.float32"):
        load_model(p)


@pytest.mark.parametrize("field, value, match", [
    ("labels", "ABNORMAL", r"'labels' must be a list of non-empty strings.*got str"),
    ("labels", [None] * 150, r"'labels' must be a list of non-empty strings"),
    ("task_meta", "multilabel", r"'task_meta' must be an object"),
    ("task_meta", {"task": "bogus"}, r"'task_meta\.task' must be one of multilabel"),
    ("task_meta", {"task": "regression", "target_mean": "x"}, r"'task_meta\.target_mean' must be a number"),
    ("source", ["x"], r"'source' must be an object"),
    ("contract.leads", "I" * 12, r"'contract\.leads' must be a list of lead names"),
    ("contract.leads", ["I"] * 12, r"'contract\.leads' must be distinct lead names"),
    ("contract.n_samples", 5000.5, r"'contract\.n_samples' must be an integer; got float"),
    ("config.kernel_size", 16.5, r"kernel_size=16\.5 must be an integer"),
    ("config.use_bn", "no", r"use_bn='no' must be true or false"),
])
def test_metadata_of_the_wrong_types(tmp_path, m12, field, value, match):
    import json

    from safetensors.torch import save_file

    from ecgfounder.models.description import model_metadata

    meta = model_metadata(m12)
    top, _, sub = field.partition(".")
    if sub:
        meta[top] = {**meta[top], sub: value}
    else:
        meta[top] = value
    p = tmp_path / "meta.safetensors"
    save_file({k: v.contiguous() for k, v in m12.state_dict().items()}, str(p), metadata={"ecgfounder": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=match):
        load_model(p)


def test_regression_metadata_with_one_standardisation_per_output_loads(tmp_path):
    import json

    from safetensors.torch import save_file

    from ecgfounder.models.description import model_metadata
    from ecgfounder.testing import tiny_model

    m = tiny_model(n_classes=2)
    meta = {**model_metadata(m), "labels": ["age", "qtc"],
            "task_meta": {"task": "regression", "target_mean": [60.0, 410.0], "target_std": [15.0, 30.0]}}
    p = tmp_path / "reg.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(p), metadata={"ecgfounder": json.dumps(meta)})
    assert load_model(p).task_meta["target_mean"] == [60.0, 410.0]
