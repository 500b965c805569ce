"""A file of ours may claim a name and hash (the published 12-lead weights, the SHA-256 of the .pth it
was converted from) that its tensors do not have: other tensors written into it keeping its header,
or its header edited.  save_model records a SHA-256 of the tensors and those claims; loading checks
it (once per state of the file), refuses a mismatch, or with strict=False takes the tensors without
the claims.  Files written before the digest was recorded load as before."""

from __future__ import annotations

import json
import os
import warnings

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ecgfounder.errors import CheckpointError
from ecgfounder.models import tensorchecks
from ecgfounder.models.loading import load_model, save_model

PUBLISHED = "ee199f3781f4ae1f732973267f003da0a759ea12bddb0dd28a77faa60aca7997"


@pytest.fixture
def claimed(tmp_path, monkeypatch, tiny_ckpt12):
    """A tiny model saved claiming to be the published 12-lead weights (as a conversion records it),
    with a digest cache of this test's own."""
    monkeypatch.setenv("ECGFOUNDER_CACHE", str(tmp_path / "cache"))
    m = load_model(tiny_ckpt12)
    m.description = m.description.replace(name="12-lead", sha256=PUBLISHED,
                                          source={"file": "12_lead_ECGFounder.pth", "sha256": PUBLISHED})
    return save_model(m, tmp_path / "converted.safetensors")


def _rewrite(src, dst, *, tensors=None, meta=None):
    """``src`` written anew as ``dst``: its tensors changed by ``tensors(sd)``, its metadata by ``meta(dict)``."""
    with safe_open(str(src), framework="pt") as f:
        header = json.loads(f.metadata()["ecgfounder"])
    sd = load_file(str(src))
    if tensors:
        tensors(sd)
    if meta:
        meta(header)
    save_file(sd, str(dst), metadata={"ecgfounder": json.dumps(header)})
    return dst


def _fine_tuned(sd):
    sd["dense.bias"] = sd["dense.bias"] + 0.5


def test_other_tensors_under_the_saved_metadata_are_refused_naming_the_claims(claimed, tmp_path):
    bad = _rewrite(claimed, tmp_path / "tuned.safetensors", tensors=_fine_tuned)
    with pytest.raises(CheckpointError) as exc:
        load_model(bad)
    text = str(exc.value)
    assert str(bad) in text and "'12-lead'" in text and PUBLISHED in text and "strict=False" in text \
        and "save_model" in text
    with pytest.warns(UserWarning, match="dropped"):  # strict=False: the tensors, without the claims
        m = load_model(bad, strict=False)
    d = m.description
    assert (d.name, d.sha256, d.source) == (None, None, {"file": str(bad), "name": None})
    assert len(d.labels) == 150 and d.contract is not None
    assert float(m.state_dict()["dense.bias"][0]) == pytest.approx(float(load_file(str(bad))["dense.bias"][0]))


def test_an_edited_claim_is_refused(claimed, tmp_path):
    def rename(meta):
        meta["name"], meta["sha256"] = "1-lead", "0" * 64

    with pytest.raises(CheckpointError, match="'1-lead'"):
        load_model(_rewrite(claimed, tmp_path / "edited.safetensors", meta=rename))


def test_an_untouched_file_loads_with_its_claims_and_is_checked_once_while_unchanged(claimed, monkeypatch):
    calls, real = [], tensorchecks.sealed_digest
    monkeypatch.setattr(tensorchecks, "sealed_digest", lambda *a: calls.append(1) or real(*a))
    st = os.stat(claimed)
    os.utime(claimed, ns=(st.st_atime_ns, st.st_mtime_ns - 3600 * 10**9))  # saved an hour ago
    m = load_model(claimed)
    assert (m.description.name, m.description.sha256) == ("12-lead", PUBLISHED) and len(calls) == 1
    load_model(claimed)
    assert len(calls) == 1  # remembered under the file's identity: not recomputed
    os.utime(claimed, ns=(st.st_atime_ns, st.st_mtime_ns - 1800 * 10**9))  # touched: checked again
    load_model(claimed)
    assert len(calls) == 2


def test_a_file_written_before_the_digest_loads_as_before(claimed, tmp_path):
    old = _rewrite(claimed, tmp_path / "old.safetensors", tensors=_fine_tuned,
                   meta=lambda meta: meta.pop(tensorchecks.DIGEST_KEY))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = load_model(old)
    assert (m.description.name, m.description.sha256) == ("12-lead", PUBLISHED)
