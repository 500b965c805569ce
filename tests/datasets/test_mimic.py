"""MIMIC-IV-ECG targets joined by patient and time: each ECG gets its patient's measurement nearest
in time within max_days (an LVEF from years away is not the ECG's LVEF)."""

from __future__ import annotations

import pandas as pd
import pytest

from ecgfounder.datasets import DatasetError, mimic_iv_ecg_manifest

RECORDS = """subject_id,study_id,file_name,ecg_time,path
1,10,10,2180-01-01 08:00:00,files/p1/s10/10
1,11,11,2180-04-10 08:00:00,files/p1/s11/11
2,12,12,2181-01-01 00:00:00,files/p2/s12/12
3,13,13,2182-06-01 12:00:00,files/p3/s13/13
"""


def _tables(tmp_path, echo: str):
    (tmp_path / "record_list.csv").write_text(RECORDS)
    (tmp_path / "echo.csv").write_text("subject_id,echo_time,lvef\n" + echo)
    return tmp_path / "echo.csv"


def test_each_ecg_gets_its_patients_nearest_measurement_within_the_window(tmp_path):
    echo = _tables(tmp_path, "1,2180-01-04 08:00:00,35\n1,2180-02-20 08:00:00,45\n1,2180-04-05 08:00:00,60\n"
                             "2,2181-01-31 00:00:00,50\n3,2182-05-31 12:00:00,\n")
    m = mimic_iv_ecg_manifest(tmp_path, echo, on="subject_id", time_column="echo_time", max_days=14)
    # patient 2's only echo is 30 days away: left out; patient 3's nearest echo has no value: kept blank
    assert m["record"].tolist() == ["10", "11", "13"] and m["patient_id"].tolist() == ["1", "1", "3"]
    assert m["lvef"].tolist()[:2] == [35, 60] and pd.isna(m["lvef"].iloc[2])
    assert m["days_to_target"].tolist() == [3.0, -5.0, -1.0]
    wide = mimic_iv_ecg_manifest(tmp_path, echo, on="subject_id", time_column="echo_time", max_days=31)
    assert wide.set_index("record").loc["12", "lvef"] == 50


def test_time_join_refuses_what_it_cannot_order(tmp_path):
    echo = _tables(tmp_path, "1,2180-01-04 08:00:00,35\n1,not a date,45\n")
    with pytest.raises(DatasetError, match=r"echo_time 'not a date' \(data row 2\) is not a date"):
        mimic_iv_ecg_manifest(tmp_path, echo, on="subject_id", time_column="echo_time")
    echo = _tables(tmp_path, "1,2180-01-04 08:00:00,35\n01,2180-01-04 08:00:00,45\n")
    with pytest.raises(DatasetError, match=r"'1 at 2180-01-04 08:00:00' has several rows"):
        mimic_iv_ecg_manifest(tmp_path, echo, on="subject_id", time_column="echo_time")
    with pytest.raises(DatasetError, match="pass on='subject_id'"):
        mimic_iv_ecg_manifest(tmp_path, echo, time_column="echo_time")
    echo = _tables(tmp_path, "1,2185-01-04 08:00:00,35\n")
    with pytest.raises(DatasetError, match="within max_days=14"):
        mimic_iv_ecg_manifest(tmp_path, echo, on="subject_id", time_column="echo_time")


def test_time_join_takes_zone_marked_times(tmp_path):
    # an ISO time with its zone (an export in UTC) against record_list's plain times
    echo = _tables(tmp_path, "1,2180-01-04T08:00:00Z,35\n2,2181-01-02T00:00:00+00:00,50\n")
    m = mimic_iv_ecg_manifest(tmp_path, echo, on="subject_id", time_column="echo_time")
    assert m["record"].tolist() == ["10", "12"] and m["days_to_target"].tolist() == [3.0, 1.0]
