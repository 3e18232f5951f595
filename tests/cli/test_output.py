"""The shared output module: what `acl ls` and the billing tables print, cell for cell."""

from __future__ import annotations

import pytest

from lumid_core.cli._output import Table, age, emit_json, iso_time, print_table, printable


def test_a_streaming_table_sizes_columns_from_its_first_rows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    table = Table(("K", "V"), sizing_rows=2)
    table.add(("a", "1"))
    assert capsys.readouterr().out == ""  # held back until the widths are known
    table.add(("bb", "2"))
    assert capsys.readouterr().out == "K   V\na   1\nbb  2\n"
    table.add(("cccc", "3"))  # wider than the first rows: printed as it comes
    assert capsys.readouterr().out == "cccc  3\n"
    table.finish()
    assert capsys.readouterr().out == ""
    assert table.rows == 3


def test_print_table_sizes_every_column_from_all_rows(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [("x", "1")] * 1500 + [("wide-cell", "2")]
    print_table(("NAME", "N"), rows)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "NAME       N"
    assert lines[1] == "x          1"
    assert lines[-1] == "wide-cell  2"


def test_a_table_without_rows_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    table = Table(("K",), sizing_rows=10)
    table.finish()
    print_table(("K",), [])
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0, "0s"), (119.9, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h00m"),
     (3 * 3600 + 5 * 60, "3h05m"), (172_799, "47h59m"), (172_800, "2d")],
)  # fmt: skip
def test_age_rounds_down_to_a_short_unit(seconds: float | None, shown: str) -> None:
    assert age(seconds) == shown


def test_times_are_utc_to_the_second() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00Z"
    assert iso_time(1_796_112_000.9) == "2026-12-01T08:00:00Z"


def test_control_characters_are_escaped_and_plain_text_kept() -> None:
    assert printable("wf-1 out.csv ") == "wf-1 out.csv "
    assert printable("a\x1b[2Jb\n") == "a\\x1b[2Jb\\n"


def test_json_lines_are_compact_and_sorted_unless_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emit_json({"b": 1, "a": [1, 2]})
    emit_json({"b": 1, "a": None}, sort_keys=False)
    assert capsys.readouterr().out == '{"a":[1,2],"b":1}\n{"b":1,"a":null}\n'
