"""Loading, audited as a demanding user: weights of another architecture under a published name,
a file whose content and name disagree, a wrapper's prefix, what strict=False leaves, what a head
reset keeps of the description, and cut files as one error line."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgfounder.errors import CheckpointError
from ecgfounder.models import loading
from ecgfounder.models.loading import load_model, save_model
from ecgfounder.models.net1d import Net1DConfig
from ecgfounder.testing import TINY_CONFIG, build_synthetic_checkpoint, synthetic_state_dict, tiny_model

TINY = {n: Net1DConfig(in_channels=n, **TINY_CONFIG) for n in (1, 12)}
X = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 12, 512)).astype(np.float32))


@pytest.fixture(scope="module")
def pth(tmp_path_factory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("pth")
    return {n: build_synthetic_checkpoint(folder / f"{n}_lead_ECGFounder.pth", n, config=TINY[n]) for n in (1, 12)}


def _logits(model):
    with torch.no_grad():
        return model(X)


@pytest.mark.parametrize("name, holds", [("12-lead", 1), ("1-lead", 12)])
def test_a_published_name_holding_other_weights_is_refused_naming_both(pth, monkeypatch, name, holds):
    monkeypatch.setattr(loading, "download_weights", lambda *a, **k: pth[holds])
    want = 12 if holds == 1 else 1
    with pytest.raises(CheckpointError, match=rf"holds a Net1D of {holds} input lead\(s\) and 150 outputs, not the "
                                              rf"{name} ECGFounder weights \({want} lead\(s\), 150 outputs\)"):
        load_model(name)


def test_a_contract_of_other_leads_is_said_once(tmp_path):
    from safetensors.torch import save_file

    from ecgfounder.models.description import model_metadata

    m = tiny_model(n_leads=1)
    meta = {**model_metadata(m), "contract": model_metadata(tiny_model())["contract"]}
    p = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(p), metadata={"ecgfounder": json.dumps(meta)})
    with pytest.raises(CheckpointError) as err:
        load_model(p)
    msg = str(err.value)
    assert "the preprocessing contract names 12 leads but the model takes 1 input channels" in msg
    assert msg.count("checkpoint metadata") == 1, msg


def test_the_content_decides_the_format_not_the_name(tmp_path, pth):
    ref = _logits(load_model(pth[12]))
    legacy = tmp_path / "legacy.pth"
    torch.save({"state_dict": synthetic_state_dict(12, config=TINY[12])}, legacy, _use_new_zipfile_serialization=False)
    saved = save_model(load_model(pth[12]), tmp_path / "ours.safetensors")
    for src, name in ((pth[12], "zip.safetensors"), (legacy, "pickle.safetensors"), (saved, "safetensors.pth")):
        shutil.copy(src, tmp_path / name)
        assert torch.equal(_logits(load_model(tmp_path / name)), ref), name
    (tmp_path / "noise.pth").write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError, match=r"noise\.pth: not a checkpoint: neither a PyTorch file \(zip or pickle\) "
                                              "nor safetensors"):
        load_model(tmp_path / "noise.pth")


def test_a_wrapper_attribute_prefix_is_unwrapped(tmp_path, pth):
    """A Lightning module holding the network as ``self.model``: its keys lose ``model.``; the
    wrapper's other tensors are named by strict loading; two candidate networks are not guessed."""
    sd = synthetic_state_dict(12, config=TINY[12])
    p = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3}, p)
    assert torch.equal(_logits(load_model(p)), _logits(load_model(pth[12])))
    torch.save({"state_dict": {**{f"model.{k}": v for k, v in sd.items()}, "loss.pos_weight": torch.ones(3)}}, p)
    with pytest.raises(CheckpointError, match=r"missing keys: none; unexpected keys: loss\.pos_weight"):
        load_model(p)
    torch.save({"state_dict": {f"{who}.{k}": v for k, v in sd.items() for who in ("teacher", "student")}}, p)
    with pytest.raises(CheckpointError, match="no 'first_conv.conv.weight'"):
        load_model(p)


def test_strict_false_says_what_it_left(tmp_path):
    sd = synthetic_state_dict(12, config=TINY[12])
    sd.pop("dense.bias")
    sd["extra.weight"] = torch.zeros(3)
    p = tmp_path / "partial.pth"
    torch.save(sd, p)
    with pytest.warns(UserWarning, match=r"strict=False \(CLI: --no-strict\): 1 tensor\(s\) of the architecture left "
                                         r"at their initial values \(dense\.bias\), 1 of the file ignored "
                                         r"\(extra\.weight\)") as said:
        load_model(p, strict=False)
    from ecgfounder.cli._common import flags

    assert "loaded with --no-strict: 1 tensor(s)" in flags(str(said[0].message))  # (not "without --no-strict")


def test_a_head_reset_drops_what_belonged_to_the_published_weights():
    """A fine-tuned head is not the published file: no published name, revision or hash (a served
    fine-tuned model called itself "ECGFounder 12-lead"), and no standardisation of the old head."""
    m = tiny_model(n_classes=2)
    m.description = m.description.replace(name="12-lead", revision="abc", sha256="0" * 64, source={"file": "x.pth"},
                                          task_meta={"task": "regression", "target_mean": [1.0, 2.0],
                                                     "target_std": [1.0, 1.0]})
    m.reset_classifier(3)
    d = m.description
    assert (d.name, d.revision, d.sha256) == (None, None, None)
    assert d.task_meta == {"task": "regression"} and d.source == {"file": "x.pth"} and d.contract is not None
    from ecgfounder.models.heads import scores_from_logits

    assert scores_from_logits(_logits(m), m.task_meta).shape == (1, 3)  # (the old 2-output standardisation broke it)


@pytest.mark.parametrize("kind", ["zip", "pickle", "safetensors"])
def test_a_cut_file_is_one_error_line(tmp_path, pth, kind):
    """(A guard: the old code answered these in one line too.)"""
    src = {"zip": pth[12], "safetensors": save_model(load_model(pth[12]), tmp_path / "s.safetensors")}.get(kind)
    if src is None:
        src = tmp_path / "legacy.pth"
        torch.save(synthetic_state_dict(12, config=TINY[12]), src, _use_new_zipfile_serialization=False)
    data = src.read_bytes()
    for keep in (len(data) - 1, len(data) // 2, 9):
        cut = tmp_path / f"cut{src.suffix}"
        cut.write_bytes(data[:keep])
        with pytest.raises(CheckpointError) as err:
            load_model(cut)
        assert "\n" not in str(err.value) and str(err.value).startswith(str(cut)), (keep, str(err.value))


def _inflated(kind: str) -> dict:
    """A state dict whose tensors declare far more weights than the file stores."""
    sd = synthetic_state_dict(12, config=TINY[12])
    if kind == "expanded":  # a 10^6-output head from 4 stored bytes (stride 0)
        sd["dense.weight"] = torch.zeros(1).expand(10**6, sd["dense.weight"].shape[1])
        sd["dense.bias"] = torch.zeros(1).expand(10**6)
    elif kind == "shared":  # every weight a view of one storage as large as the largest alone
        big = torch.zeros(max(v.numel() for v in sd.values()))
        sd = {k: big[: v.numel()].view(v.shape) if v.is_floating_point() else v for k, v in sd.items()}
    else:  # a kernel of 4000 taps in the stem: every grouped convolution the model would build is 250x larger
        sd["first_conv.conv.weight"] = torch.zeros(sd["first_conv.conv.weight"].shape[0], 12, 4000)
    return sd


@pytest.mark.parametrize("kind, says", [("expanded", r"dense\.weight \(1000000, 32\) is a view of 4 stored bytes"),
                                        ("shared", r"declare \d+ bytes of weights over \d+ stored bytes"),
                                        ("kernel", r"its tensor shapes describe a model of about 3\.\d+e\+06 parameters "
                                                   r"but the file holds 405181")])
def test_tensors_the_file_does_not_store_are_refused_before_a_model_is_built(tmp_path, monkeypatch, kind, says):
    """A small .pth whose tensors are views repeating a few stored numbers (or whose stem declares an
    absurd kernel) made load_model build, and fill, a model of gigabytes (a 123-MB file: 7.5 GB)."""
    p = tmp_path / f"{kind}.pth"
    torch.save({"state_dict": _inflated(kind)}, p)

    def no_build(*a, **k):
        raise AssertionError("a model was built for tensors the file does not hold")

    monkeypatch.setattr(loading, "Net1D", no_build)
    with pytest.raises(CheckpointError, match=says) as err:
        load_model(p)
    assert "\n" not in str(err.value) and str(err.value).startswith(str(p))


def test_converting_one_of_ours_keeps_its_description_and_writes_nowhere_else(tmp_path, monkeypatch):
    """convert of a .safetensors took the source file its description records for the file read: its
    recorded SHA-256 became null (that file was elsewhere), the default output went beside that
    file (here: ./orig.safetensors in the working folder), and converting a save_pretrained folder
    wrote there too."""
    from ecgfounder.models.hub import save_pretrained

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    m = tiny_model()
    m.description = m.description.replace(labels=tuple(f"L{i}" for i in range(m.num_classes)), sha256="ab" * 32,
                                          source={"file": "orig.pth", "sha256": "cd" * 32, "name": "mine"})
    ours = save_model(m, tmp_path / "ours.safetensors")
    want = load_model(ours).description.to_dict()
    out = loading.convert_checkpoint(ours, tmp_path / "again.safetensors")
    assert load_model(out).description.to_dict() == want
    with pytest.raises(CheckpointError, match="would replace it; give another output file") as err:
        loading.convert_checkpoint(ours)
    assert "\n" not in str(err.value)
    folder = save_pretrained(m, tmp_path / "shared")
    with pytest.raises(CheckpointError, match="would replace it"):
        loading.convert_checkpoint(folder)
    assert list(work.iterdir()) == []
    assert load_model(ours).description.to_dict() == want  # (the input untouched)


@pytest.mark.parametrize("zipped", [True, False])
def test_a_pickle_protocol_torch_cannot_read_safely_is_said_in_one_line(tmp_path, zipped):
    """torch.save(..., pickle_protocol=4) files were refused as holding 'more than tensors and plain
    data (Unsupported operand 149)', after a warning line of torch's; protocol 3 loaded with up to
    five such warnings."""
    import warnings

    sd = synthetic_state_dict(12, config=TINY[12])
    p = tmp_path / "p.pth"
    for proto in (3, 4, 5):
        torch.save({"state_dict": sd, "epoch": 3}, p, pickle_protocol=proto, _use_new_zipfile_serialization=zipped)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (no warning of torch's about the protocol)
            if proto == 3:
                assert load_model(p).num_classes == 150
                continue
            with pytest.raises(CheckpointError) as err:
                load_model(p)
        msg = str(err.value)
        assert f"saved with pickle protocol {proto} (torch.save(..., pickle_protocol={proto}))" in msg, msg
        assert "\n" not in msg and "more than tensors" not in msg


def test_a_tensor_twice_under_wrapper_prefixes_is_not_guessed(tmp_path):
    """'dense.bias' and 'module.dense.bias' both in a file: the second loaded silently (by file order)."""
    sd = synthetic_state_dict(12, config=TINY[12])
    p = tmp_path / "twice.pth"
    torch.save({"state_dict": {**sd, "module.dense.bias": sd["dense.bias"] + 100}}, p)
    with pytest.raises(CheckpointError, match=r"holds both 'dense\.bias' and 'module\.dense\.bias', one tensor "
                                              r"'dense\.bias' once") as err:
        load_model(p)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", [2, "1", None])
def test_a_file_of_another_format_version_is_refused(tmp_path, value):
    """A file a newer release wrote (format_version 2) loaded as if its fields meant what they mean here."""
    from safetensors.torch import save_file

    from ecgfounder.models.description import model_metadata

    m = tiny_model()
    p = tmp_path / "m.safetensors"
    meta = {**model_metadata(m), "format_version": value}
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(p), metadata={"ecgfounder": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=rf"written as format_version={value!r}; this ecgfounder reads "
                                              r"format_version=1 \(a newer release may read it") as err:
        load_model(p)
    assert "\n" not in str(err.value)


def test_a_torchscript_archive_is_named_as_such_in_one_line(tmp_path):
    """An exported TorchScript file given as weights: torch warned in a second line that it dispatches
    to torch.jit.load, then the error blamed a corrupt or truncated file and weights_only defaults."""
    import warnings

    from ecgfounder.runtime.export import export_torchscript

    p = export_torchscript(tiny_model(), tmp_path / "m.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError, match=r"m\.pt: is a TorchScript archive \(a program, e\.g\. from ecgfounder "
                                                  r"export\), not a checkpoint; run it with torch\.jit\.load") as err:
            load_model(p)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("key", [0, (1, 2), None])
def test_a_tensor_under_a_key_that_is_no_name_is_one_error_line(tmp_path, key):
    """A state dict with an int, tuple or None key raised AttributeError ('int' object has no attribute
    'startswith'), a traceback instead of a CheckpointError."""
    p = tmp_path / "keys.pth"
    torch.save({"state_dict": {**synthetic_state_dict(12, config=TINY[12]), key: torch.zeros(1)}}, p)
    with pytest.raises(CheckpointError, match=rf"tensor key {re.escape(repr(key))} is a {type(key).__name__}, not a "
                                              "name") as err:
        load_model(p)
    assert "\n" not in str(err.value)
