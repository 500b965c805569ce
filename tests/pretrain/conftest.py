"""Fixtures of the pre-training tests (helpers in _pt_helpers.py)."""

from __future__ import annotations

import warnings

import pytest
import torch

from _pt_helpers import DATA, SMALL_CONTRACT


@pytest.fixture(scope="session")
def small_store(tmp_path_factory):
    """A store of 10 CinC records + one CPSC 2021 record + the MUSE file + a broken file."""
    from ecgfounder.pretrain.store import build_store

    tmp = tmp_path_factory.mktemp("store")
    bad = tmp / "broken.hea"
    bad.write_text("not a header\n")
    srcs = sorted((DATA / "cinc2021").glob("*.hea"))[:10] + [DATA / "train" / "cpsc2021" / "data_8_4.hea",
                                                              DATA / "formats" / "muse_xml" / "musePHI_muse_ecg1.xml", bad]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_store(srcs, tmp / "shards", contract=SMALL_CONTRACT, workers=1, records_per_chunk=4,
                           shard_size=8, dtype="float32")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on the shared 2-core machine two OpenMP threads of tiny convolutions
    spin against each other (measured 40 ms vs 1.7 s per step)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
