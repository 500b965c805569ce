"""The dataset layer: labels, patients, folds and file paths of known datasets, used by
evaluation and by training alike (signals are read later, one record at a time).

Modules: :mod:`.codes` (the one ``Dx`` and ``scp_codes`` parser), :mod:`.labelled`
(:class:`LabelledSet`, label tables), :mod:`.ids` (ids a dataset defines as integers, written one
way on both sides of a join), :mod:`.ptbxl`, :mod:`.cinc2021`, :mod:`.cpsc` (CPSC 2021, CPSC
2019), :mod:`.mimic` (MIMIC-IV-ECG).
"""

from __future__ import annotations

from .cinc2021 import CINC2021_SCORED, cinc2021_manifest, load_cinc2021
from .codes import header_dx, parse_dx, parse_scp_codes
from .cpsc import cpsc2019_manifest, cpsc2021_manifest
from .errors import DatasetError
from .labelled import LabelledSet, load_label_table, mapped_truth, read_table
from .mimic import mimic_iv_ecg_manifest
from .ptbxl import PTBXL_TASKS, load_ptbxl, ptbxl_manifest

__all__ = [
    "DatasetError", "LabelledSet", "mapped_truth", "load_label_table", "read_table",
    "parse_dx", "header_dx", "parse_scp_codes",
    "load_ptbxl", "ptbxl_manifest", "PTBXL_TASKS",
    "load_cinc2021", "cinc2021_manifest", "CINC2021_SCORED",
    "cpsc2021_manifest", "cpsc2019_manifest", "mimic_iv_ecg_manifest",
]
