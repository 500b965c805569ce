"""Label tables with problems: each is one ManifestError naming the bad value and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecgfounder.train.config import config_from_dict
from ecgfounder.train.loop import finetune
from ecgfounder.train.manifest import ManifestError
from ecgfounder.train.splits import assign_splits
from ecgfounder.train.tasks import build_task

from _train_helpers import base_config


def test_a_record_under_two_patients_is_refused_not_split():
    """A record listed under two patient ids (a data-entry slip) was two groups: its rows could land
    in two splits (with seed 2 here: r0 in test under patient 0, in train under 99)."""
    df = pd.DataFrame({"path": [f"r{i}" for i in range(12)] + ["r0"], "patient_id": [str(i) for i in range(12)] + ["99"],
                       "start_s": [0.0] * 12 + [10.0], "AF": [0, 1] * 6 + [0]})
    with pytest.raises(ManifestError, match=r"record r0 is listed under 2 patients \['0', '99'\] \(rows \[0, 12\].*"
                                            "same 'patient_id'"):
        assign_splits(df, fractions=(0.5, 0.25, 0.25), seed=2)
    # a row without an id joins its record's patient (it was a group of its own: in train, r0 in test)
    df.loc[12, "patient_id"] = None
    out = assign_splits(df, fractions=(0.5, 0.25, 0.25), seed=2)
    assert out.split[12] == out.split[0]


def test_a_repeated_example_row_is_refused(tmp_path, cpsc2021_manifest, cache_dir):
    """The same record and segment twice: it counted twice in training and in the test metrics."""
    df = pd.read_csv(cpsc2021_manifest, dtype={"patient_id": str})
    pd.concat([df, df.iloc[[3]]]).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ManifestError, match=rf"record .*{df.record[3].split('#')[0]}\.hea \(start_s=30.0, duration_s=10.0\) "
                                            r"is listed more than once, in rows \[3, 55\].*drop the repeated rows"):
        finetune(config_from_dict(base_config(tmp_path / "m.csv", tmp_path / "run", cache_dir)))


@pytest.mark.parametrize("kind, column, says", [
    ("multilabel", ["af", "n", "af"], r"not numeric \(row 0 holds 'af'\); task.type=multilabel needs numbers \(0 or 1\)\. "
                                      "One column of class names is task.type=multiclass"),
    ("binary", [0, 2, 1], r"task.type=binary targets must be 0 or 1; row 1 column 'y' holds 2\. Class numbers in one "
                          "column are task.type=multiclass"),
    ("regression", ["af", "n", "af"], r"not numeric \(row 0 holds 'af'\); task.type=regression needs numbers\."),
])
def test_a_target_of_another_task_type_names_the_right_one(kind, column, says):
    df = pd.DataFrame({"y": column})
    with pytest.raises(ManifestError, match=says):
        build_task(kind, df, ["y"], np.ones(3, bool))


def test_one_hot_rows_with_several_labels_point_to_multilabel():
    df = pd.DataFrame({"a": [1, 1, 0], "b": [0, 1, 1]})
    with pytest.raises(ManifestError, match=r"row 1 holds 2\. Rows with several labels, or none, are task.type=multilabel"):
        build_task("multiclass", df, ["a", "b"], np.ones(3, bool))
