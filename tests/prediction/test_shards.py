"""Splitting a record list into shards."""

from __future__ import annotations

import pytest

from ecgfounder.prediction.shards import parse_shard, part_name, shard, shard_bounds, shard_from_env


def test_shard_split_is_a_partition():
    items = [f"f{i:03d}" for i in range(103)][::-1]
    parts = [shard(items, i, 4) for i in range(4)]
    assert sum(parts, []) == sorted(items)
    assert {len(p) for p in parts} == {25, 26}
    assert shard_bounds(10, 2, 3) == (7, 10)
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/3", "a/b", "3"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "3"}) == (1, 3)
    assert shard_from_env({"WORLD_SIZE": "1"}) is None
    assert part_name("out/p.csv", 2, 4) == "out/p.shard-00002-of-00004.csv"
