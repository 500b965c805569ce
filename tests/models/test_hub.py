"""Sharing a model the Hugging Face way, against the local stand-in Hub (tests/hub_server.py)."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from ecgfounder.errors import CheckpointError, WeightsDownloadError
from ecgfounder.models.hub import from_pretrained, model_card, push_to_hub, save_pretrained
from ecgfounder.models.hubref import parse_hf_reference
from ecgfounder.models.loading import load_model
from ecgfounder.models.net1d import Net1D, Net1DConfig
from ecgfounder.signal.preprocess import PreprocessContract

SMALL = {"base_filters": 8, "filter_list": [16, 16, 32], "m_blocks_list": [1, 1, 1]}


@pytest.fixture
def tuned():
    """A tiny model described as a fine-tuned one: new 2-label head on the 12-lead base."""
    torch.manual_seed(3)
    m = Net1D(Net1DConfig(in_channels=1, n_classes=2, **SMALL))
    m.labels = ("AF", "normal")
    m.contract = PreprocessContract(leads=("I",))
    m.task_meta = {"task": "multilabel"}
    m.source = {"init": "12-lead", "base": {"name": "12-lead"}, "val_metrics": {"val_auroc": 0.91},
                "test_metrics": {"test_auroc": 0.87}}
    return m.eval()


def _same_outputs(a, b):
    x = torch.randn(3, 1, 5000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_hf_references_parsed_and_refused():
    assert parse_hf_reference("hf://owner/name") == ("owner/name", None)
    assert parse_hf_reference("hf://owner/name@v1.0") == ("owner/name", "v1.0")
    for bad in ("hf://justname", "hf://a/b/c", "hf://owner/name@", "hf://../x"):
        with pytest.raises(CheckpointError, match="hf://OWNER/NAME"):
            parse_hf_reference(bad)


def test_save_pretrained_layout_card_and_modes(tuned, tmp_path):
    out = save_pretrained(tuned, tmp_path / "m", repo_id="me/af")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["labels"] == ["AF", "normal"] and cfg["contract"]["leads"] == ["I"] and cfg["config"]["in_channels"] == 1
    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: ecgfounder" in front and "base_model: PKUDigitalHealth/ECGFounder" in front
    for text in ("12-lead", "multilabel", "`AF`", "`normal`", '"fs": 500', "test test_auroc | 0.8700",
                 'load_model("hf://me/af")'):
        assert text in card, text
    umask = os.umask(0)
    os.umask(umask)
    for p in out.iterdir():  # ordinary file modes, as open() gives, not 0600
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p.name
    back = from_pretrained(out)
    assert _same_outputs(tuned, back) and back.labels == tuned.labels and back.contract == tuned.contract
    assert _same_outputs(tuned, from_pretrained(out / "model.safetensors"))
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        from_pretrained(tmp_path)


def test_a_local_folder_loads_as_its_card_says(tuned, tmp_path):
    """The card of a folder (no repository) says load_model("./this-folder") and --checkpoint: both
    take the folder (load_model refused it: "is a folder")."""
    from ecgfounder.cli._common import model_from_args
    from ecgfounder.cli import build_parser

    out = save_pretrained(tuned, tmp_path / "m")
    card = (out / "README.md").read_text()
    assert 'load_model("./this-folder")' in card and "predict record.hea --checkpoint ./this-folder`" in card
    assert _same_outputs(tuned, load_model(out))
    args = build_parser("predict").parse_args(["predict", "x.hea", "--checkpoint", str(out)])
    assert _same_outputs(tuned, model_from_args(args))


def test_card_without_base_or_evaluation(tmp_path):
    m = Net1D(Net1DConfig(in_channels=1, n_classes=1, **SMALL))
    m.source = {"init": "random"}
    card = model_card(m)
    assert "base_model" not in card and "random initialisation" in card and "No evaluation recorded." in card


def test_push_and_load_back_by_name(tuned, stand_in_hub):
    ref = push_to_hub(tuned, "me/af-detector", token="hf_test")
    assert ref.startswith("hf://me/af-detector@")
    assert stand_in_hub.commits[-1]["paths"] == ["README.md", "config.json", "model.safetensors"]
    assert stand_in_hub.tokens[-1] == "Bearer hf_test"
    for name in ("hf://me/af-detector", ref):
        back = load_model(name)
        assert _same_outputs(tuned, back) and back.labels == ("AF", "normal")
    # a second push is a new commit; the pinned reference still gives the first model
    other = Net1D(Net1DConfig(in_channels=1, n_classes=2, **SMALL))
    other.labels = ("AF", "normal")
    push_to_hub(other, "me/af-detector", token="hf_test")
    assert _same_outputs(other, from_pretrained("me/af-detector"))
    assert _same_outputs(tuned, load_model(ref))


def test_missing_repository_is_one_line(stand_in_hub):
    with pytest.raises(WeightsDownloadError, match=r"could not download hf://nobody/nothing \(") as exc:
        load_model("hf://nobody/nothing")
    assert "\n" not in str(exc.value)
    # the fix names how to load a downloaded folder (it said 'pass its path', to no argument)
    from ecgfounder.cli._common import flags

    assert str(exc.value).endswith("load it from there: load_model(FOLDER), or model=FOLDER (CLI: --checkpoint FOLDER).")
    assert flags(str(exc.value)).endswith("load it from there: --checkpoint FOLDER.")


def test_a_damaged_transfer_is_caught_by_the_hash_the_hub_advertised(tuned, stand_in_hub, tmp_path):
    """A shared model (or the 1-lead weights, which have no published hash) whose bytes were damaged
    on the way loaded silently, some weights changed; the Hub advertises the SHA-256 of a large file
    (its ETag, the cache's blob name)."""
    from ecgfounder.models import weights
    from ecgfounder.testing import build_synthetic_checkpoint

    save_pretrained(tuned, tmp_path / "m")
    stand_in_hub.add("lab/af", "model.safetensors", tmp_path / "m" / "model.safetensors")
    pth = build_synthetic_checkpoint(tmp_path / "1.pth", 1, config=Net1DConfig(in_channels=1, **SMALL))
    stand_in_hub.add(weights.HUB_REPO, "1_lead_ECGFounder.pth", pth)
    stand_in_hub.corrupt.update({"model.safetensors", "1_lead_ECGFounder.pth"})
    for name, says in (("hf://lab/af", r"downloaded hf://lab/af \(model\.safetensors\) is corrupt"),
                       ("1-lead", r"downloaded 1_lead_ECGFounder\.pth is corrupt")):
        with pytest.raises(WeightsDownloadError, match=says + r": SHA-256 [0-9a-f]{64} != [0-9a-f]{64}, the SHA-256 "
                                                        "the Hub advertised for it. The file was removed") as err:
            load_model(name, cache_dir=tmp_path / "c")
        assert "\n" not in str(err.value)
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file() and p.suffix in (".pth", ".safetensors")]
    stand_in_hub.corrupt.clear()  # the next try downloads it anew, whole
    assert _same_outputs(tuned, load_model("hf://lab/af", cache_dir=tmp_path / "c"))
    assert load_model("1-lead", cache_dir=tmp_path / "c").config.in_channels == 1


def test_a_revision_that_climbs_out_of_the_cache_is_refused(tuned, stand_in_hub, tmp_path):
    """hf://lab/m@../../../escaped downloaded, and huggingface_hub filed the revision under
    refs/../../../escaped: a file written outside the cache folder."""
    save_pretrained(tuned, tmp_path / "m")
    stand_in_hub.add("lab/m", "model.safetensors", tmp_path / "m" / "model.safetensors")
    cache = tmp_path / "a" / "b" / "cache"
    for rev in ("../../../escaped", "refs/../../../escaped", "main/..", "a b", "/abs"):
        with pytest.raises(CheckpointError, match=r"is not a branch, tag or commit id") as err:
            load_model(f"hf://lab/m@{rev}", cache_dir=cache)
        assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match=r"revision '\.\./\.\./\.\./escaped' is not a branch"):
        from_pretrained("lab/m", revision="../../../escaped", cache_dir=cache)
    assert not [p for p in tmp_path.rglob("escaped*")] and not stand_in_hub.requests
    assert parse_hf_reference("hf://lab/m@refs/pr/1") == ("lab/m", "refs/pr/1")
    assert _same_outputs(tuned, load_model("hf://lab/m@v1.0+cpu", cache_dir=cache))


def test_offline_mode_is_named_as_the_reason(stand_in_hub, monkeypatch):
    """With HF_HUB_OFFLINE set, an hf:// model not in the cache said 'the Hub could not be reached'
    (check the network), while the Hub was never asked."""
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsDownloadError, match=r"could not download hf://lab/x \(HF_HUB_OFFLINE is set \(unset it "
                                                   r"to download\) and the model is not in the local") as err:
        load_model("hf://lab/x")
    assert "\n" not in str(err.value) and not stand_in_hub.requests
