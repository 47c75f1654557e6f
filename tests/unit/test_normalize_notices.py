"""What commune notices say, sentence by sentence: tests/data/notices-vi.txt holds each notice as
written and, by hand, how a person reads it aloud in northern Vietnamese (the default). The
expected lines were written from how Vietnamese is spoken, not copied from the normaliser's output.

Conventions the expectations follow: an abbreviation is replaced by its words in lower case; a
date is "ngày D tháng M năm Y" ("ngày" is not doubled); minutes are said with "phút"; a phone
number is read digit by digit with a pause (a comma) between its groups; "2,5" is "hai phẩy năm";
what needs no change (names, words in capitals, punctuation) stays as written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcastd.render.normalize import Normalizer

TABLE = Path(__file__).parent.parent / "data" / "notices-vi.txt"


def read_table(path: Path) -> list[tuple[str, str, str]]:
    """(section, written, spoken) for every notice; a section starts at a `## name` line."""
    rows: list[tuple[str, str, str]] = []
    section, written = "", None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:]
        elif line.startswith("= "):
            assert written is not None, f"{path}: '= ' line without a notice: {line!r}"
            rows.append((section, written, line[2:]))
            written = None
        elif line and not line.startswith("#"):
            assert written is None, f"{path}: notice without its reading: {written!r}"
            written = line
    return rows


NOTICES = read_table(TABLE)
NORMALIZE = Normalizer()


def test_the_table_covers_every_kind_of_notice():
    assert len(NOTICES) >= 150
    assert len({written for _, written, _ in NOTICES}) == len(NOTICES)
    sections = {section for section, _, _ in NOTICES}
    assert {"health", "farming", "weather", "meetings", "insurance", "fees"} <= sections


@pytest.mark.parametrize(
    ("written", "spoken"), [(w, s) for _, w, s in NOTICES], ids=[w[:40] for _, w, _ in NOTICES]
)
def test_a_notice_reads_as_a_person_reads_it(written, spoken):
    assert NORMALIZE(written) == spoken


SOUTH = [
    ("Có 105 hộ.", "Có một trăm lẻ năm hộ."),
    ("Thu 24.000 đồng/người.", "Thu hai mươi bốn ngàn đồng một người."),
    ("năm 2005", "năm hai ngàn không trăm lẻ năm"),
    ("thứ 4 và tháng 4", "thứ tư và tháng tư"),
]


@pytest.mark.parametrize(("written", "spoken"), SOUTH)
def test_southern_number_words(written, spoken):
    assert Normalizer(numbers="south")(written) == spoken


def test_the_commune_lexicon_comes_first_and_its_words_are_read_on():
    local = Normalizer(
        {"HTX Tân Lập": "hợp tác xã Tân Lập", "Pác Nặm": "Pắc Nặm", "QL3C": "quốc lộ 3C"}
    )
    assert local("HTX Tân Lập và HTX Nà Ca họp ở Pác Nặm, trên QL3C.") == (
        "hợp tác xã Tân Lập và hợp tác xã Nà Ca họp ở Pắc Nặm, trên quốc lộ ba xê."
    )
    # whole words only, exactly as written
    assert local("Pác Nặmx và pác nặm") == "Pác Nặmx và pác nặm"


def test_the_example_sentence_of_the_issue():
    assert NORMALIZE("UBND xã ngày 15/12/2026 lúc 7h30, 5°C, 300 kg") == (
        "ủy ban nhân dân xã ngày mười lăm tháng mười hai năm hai nghìn không trăm hai mươi sáu "
        "lúc bảy giờ ba mươi phút, năm độ xê, ba trăm ki lô gam"
    )


def test_a_bulleted_notice_on_several_lines_is_one_line_with_its_pauses():
    written = "THÔNG BÁO\n- Thời gian: 7h30, thứ 2\n- Địa điểm: nhà văn hóa thôn"
    assert NORMALIZE(written) == (
        "THÔNG BÁO. Thời gian: bảy giờ ba mươi phút, thứ hai. Địa điểm: nhà văn hóa thôn"
    )
