"""The published weights are SHA-256 checked on every load by name; an unchanged file (the 1-lead
one took ~1 s a load) is hashed once, its digest remembered in the package's cache under the
file's path, size and times; a file that changed is hashed again."""

from __future__ import annotations

import os
import shutil

import pytest

from ecgfounder.models import weights
from ecgfounder.models.loading import load_model
from ecgfounder.models.net1d import Net1DConfig
from ecgfounder.testing import TINY_CONFIG, build_synthetic_checkpoint

HOUR = 3600 * 10**9


@pytest.fixture
def hashes(monkeypatch, tmp_path) -> list[str]:
    """The files hashed (a counting SHA-256), with a cache of this test's own."""
    monkeypatch.setenv("ECGFOUNDER_CACHE", str(tmp_path / "cache"))
    seen, real = [], weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda p, *a, **k: seen.append(str(p)) or real(p, *a, **k))
    return seen


def _age(path, ns: int = HOUR) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - ns))


def test_the_one_lead_weights_are_hashed_once_while_the_file_is_unchanged(tmp_path, monkeypatch, hashes):
    import huggingface_hub

    src = build_synthetic_checkpoint(tmp_path / "1_lead_ECGFounder.pth", 1, config=Net1DConfig(in_channels=1, **TINY_CONFIG))
    blob = tmp_path / "hub" / "blobs" / weights.sha256_file(src)  # as the Hugging Face cache names a large file
    blob.parent.mkdir(parents=True)
    shutil.copy(src, blob)
    hashes.clear()
    _age(blob)  # downloaded a while ago
    monkeypatch.setattr(weights, "_hub_resolvable", lambda: True)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: str(blob))
    assert load_model("1-lead").config.in_channels == 1 and hashes == [str(blob)]
    load_model("1-lead")
    assert hashes == [str(blob)]  # the second load did not read the file again
    _age(blob, 10**9)  # touched (another modification time): checked again
    load_model("1-lead")
    assert hashes == [str(blob)] * 2


def test_a_changed_file_is_hashed_again_and_a_mismatch_never_comes_from_the_cache(tmp_path, hashes):
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 1000)
    _age(f)
    good = weights.sha256_cached(f)
    assert weights.sha256_cached(f) == good and len(hashes) == 1
    assert weights.sha256_cached(f, expected="0" * 64) == good and len(hashes) == 2  # not what was expected: read again
    st = os.stat(f)
    with open(f, "ab") as out:  # another size (the same modification time given back)
        out.write(b"b")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = weights.sha256_cached(f)
    assert changed != good and changed == weights.sha256_cached(f) and len(hashes) == 3
    g = tmp_path / "fresh.bin"  # written just now: hashed, not remembered (it may still be being written)
    g.write_bytes(b"c")
    weights.sha256_cached(g)
    weights.sha256_cached(g)
    assert hashes[3:] == [str(g)] * 2
