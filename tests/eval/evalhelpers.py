"""Constants and helpers shared by the evaluation tests (imported by conftest and tests)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"
CINC = DATA.parent / "cinc2021"  # the 50 real CinC 2021 records shared by all tests
HR_RECORDS = [f"HR0600{i}" for i in range(10)]

# SNOMED Dx codes of the ten HR (PTB-XL) records → the SCP-ECG statements PTB-XL uses for them,
# with PTB-XL's likelihood convention (100 for diagnostic statements, 0 for rhythm/form ones).
SNOMED_TO_SCP = {
    "426783006": ("SR", 0.0),
    "426177001": ("SBRAD", 0.0),
    "427084000": ("STACH", 0.0),
    "713426002": ("IRBBB", 100.0),
    "164934002": ("NDT", 100.0),
    "55930002": ("NST_", 100.0),
}
# fold 10 (test): HR06001 (ST change), HR06003 (sinus tachycardia) and three sinus-rhythm records
TEST_FOLD = {"HR06001", "HR06003", "HR06004", "HR06005", "HR06009"}
SAME_PATIENT = {"HR06004": 9004, "HR06005": 9004}


def header_dx(hea: Path) -> list[str]:
    for line in hea.read_text().splitlines():
        if line.startswith("# Dx:"):
            return [c.strip() for c in line.split(":", 1)[1].split(",") if c.strip()]
    raise AssertionError(f"no Dx in {hea}")
