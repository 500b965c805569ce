"""Hostile and odd member paths of zip archives (folders kept since member_path): what is
refused for one member only, and what the warnings of an archive inside an archive name."""

from __future__ import annotations

import io
import unicodedata
import warnings
import zipfile
from pathlib import Path

import pytest

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError
from ecgfounder.recording import Recording

MUSE = (Path(__file__).resolve().parent.parent / "data" / "formats" / "muse_xml" / "musePHI_muse_ecg1.xml").read_bytes()


def _zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (zipfile's own "Duplicate name")
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return buf.getvalue()


def _read(z: Path) -> tuple[list[str], dict[str, str], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = list(eio.iter_read(z, errors="yield"))
    recs = [g.meta["archive_member"] for g in got if isinstance(g, Recording)]
    errs = {g.member: str(g) for g in got if isinstance(g, RecordReadError)}
    return recs, errs, [str(w.message) for w in caught]


def test_a_symlink_member_is_one_failure_not_a_file_of_its_target_path(tmp_path):
    """A symbolic link stored in a zip (zip -y) was extracted as a regular file holding the path it
    points to, then read as an ECG file (a WFDB .dat of a link read the path's bytes as samples)."""
    link = zipfile.ZipInfo("rec/E1.dat")
    link.external_attr = (0o120777 << 16)
    z = tmp_path / "links.zip"
    z.write_bytes(_zip([(link, b"../../../etc/passwd"), ("rec/ok.xml", MUSE)]))
    recs, errs, _ = _read(z)
    assert recs == ["rec/ok.xml"]
    assert list(errs) == ["rec/E1.dat"] and errs["rec/E1.dat"].startswith(
        f"{z}: rec/E1.dat in the zip archive: a symbolic link, not followed")


def test_a_member_in_folders_too_deep_is_one_failure(tmp_path):
    """A member 900 folders deep made 900 folders (2000 such members: 1.8 million, minutes of disk
    work for a 4 MB archive); deeper ones failed with Python's "maximum recursion depth"."""
    z = tmp_path / "deep.zip"
    z.write_bytes(_zip([("a/" * 40 + "x.xml", MUSE), ("a/" * 16 + "ok.xml", MUSE)]))
    recs, errs, _ = _read(z)
    assert recs == ["a/" * 16 + "ok.xml"]  # (16 deep: the limit, read)
    (why,) = errs.values()
    assert why.endswith(": in folders 40 deep (limit 16); refused") and "ecgfounder-" not in why
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("order", [("a", "a/b.xml"), ("a/b.xml", "a")])
def test_a_file_with_the_path_of_a_folder_is_one_failure_said_plainly(tmp_path, order):
    """``a`` as a file and ``a/b.xml`` under it: one of the two cannot be extracted, a failure of its
    own (it said only "File exists" or "Is a directory"); the other members are read."""
    data = {"a": b"x", "a/b.xml": MUSE}
    z = tmp_path / "clash.zip"
    z.write_bytes(_zip([(n, data[n]) for n in order] + [("ok.xml", MUSE)]))
    recs, errs, _ = _read(z)
    assert "ok.xml" in recs
    bad, = errs
    expect = ("one of its folders has the path of a file of the archive" if bad == "a/b.xml"
              else "the archive holds a folder of its path")
    assert errs[bad] == f"{z}: {bad} in the zip archive: cannot be extracted: {expect}"


def test_names_alike_but_for_unicode_normalisation_are_one_path(tmp_path):
    """café.xml composed (NFC) and decomposed (NFD, as macOS writes it) are one file on a macOS
    disk (the second overwrote the first there) and were read as two records here: now one path,
    the second named in the warning, as for names that differ in letter case."""
    nfc, nfd = unicodedata.normalize("NFC", "site/café.xml"), unicodedata.normalize("NFD", "site/café.xml")
    z = tmp_path / "accents.zip"
    z.write_bytes(_zip([(nfc, MUSE), (nfd, MUSE)]))
    recs, errs, said = _read(z)
    assert recs == [nfc] and not errs
    assert any(s.startswith(f"{z}: 1 file(s) of the zip archive passed over") and nfd in s for s in said)


def test_the_warning_of_a_zip_inside_a_zip_names_the_archive_not_the_temporary_folder(tmp_path):
    """Files of one path in a zip inside a folder of a zip were named in a warning that began with
    the private temporary copy (/tmp/ecgfounder-.../sub/inner.zip: ...)."""
    z = tmp_path / "outer.zip"
    z.write_bytes(_zip([("sub/inner.zip", _zip([("a.xml", MUSE), ("A.xml", MUSE)]))]))
    recs, errs, said = _read(z)
    assert recs == ["sub/inner.zip"] and not errs
    dup = [s for s in said if "passed over, the same path" in s]
    assert dup and dup[0].startswith(f"{z}: sub/inner.zip: 1 file(s) of the zip archive passed over"), dup
    assert all("ecgfounder-" not in s for s in said)



def test_member_names_with_control_characters_make_one_line_messages(tmp_path):
    """A member named with a newline and a terminal escape made its failure's message, and the
    warning of a file passed over, two lines, the second starting with ESC[31m: a log line split
    and a terminal recoloured."""
    z = tmp_path / "ctl.zip"
    z.write_bytes(_zip([("a\nb\x1b[31m.hea", b"not a header"), ("c\nd\x1b[0m.xml", b"<not xml"),
                        ("ok.xml", MUSE)]))
    recs, errs, said = _read(z)
    assert recs == ["ok.xml"]
    ((member, message),) = errs.items()
    assert member == "a\nb\x1b[31m.hea"  # (the attribute keeps the name as it is)
    assert message.isprintable() and "a\\nb\\x1b[31m.hea" in message
    (passed,) = [w for w in said if "passed over" in w]
    assert passed.isprintable() and "c\\nd\\x1b[0m.xml" in passed


def test_a_wfdb_header_and_its_signal_in_two_folders_of_a_zip_fail_saying_where_it_is_looked_for(tmp_path):
    """Since folders are kept, a header in hea/ and its signal in dat/ are not one record: the
    failure says the signal file is read from the header's folder."""
    cinc = Path(__file__).resolve().parent.parent / "data" / "cinc2021"
    z = tmp_path / "split.zip"
    z.write_bytes(_zip([("hea/E07500.hea", (cinc / "E07500.hea").read_bytes()),
                        ("dat/E07500.mat", (cinc / "E07500.mat").read_bytes())]))
    recs, errs, _ = _read(z)
    assert recs == [] and sorted(errs) == ["dat/E07500.mat", "hea/E07500.hea"]
    assert "E07500.mat is missing: WFDB reads it from the header's folder" in errs["hea/E07500.hea"]
    assert "put E07500.hea beside it" in errs["dat/E07500.mat"]  # (taken for a MATLAB file, its 'val' refused)


@pytest.mark.parametrize("case", ["members", "declared"])
def test_a_zip_refused_whole_says_what_to_do(tmp_path, monkeypatch, case):
    """Too many files, or members declaring more bytes than the archive's limit, refuse the
    archive whole: the message named the limit but not the way on."""
    import ecgfounder.io.compressed as comp

    if case == "members":
        monkeypatch.setattr(comp, "_MAX_MEMBERS", 2)
    else:
        monkeypatch.setattr(comp, "decompressed_limit", lambda n: 1000)
    z = tmp_path / "big.zip"
    z.write_bytes(_zip([(f"r{k}.xml", MUSE) for k in range(3)]))
    with pytest.raises(RecordReadError, match="limit") as err:
        list(eio.iter_read(z))
    assert str(err.value).endswith("give the folder") or "give the folder," in str(err.value)
