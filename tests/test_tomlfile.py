"""The generic TOML reader: line finding and typed getters, on real files in tmp_path.

The digest schema is tested in test_config.py; these are the TOML shapes and getter rules
that schema does not happen to use.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from digest.errors import ConfigError
from digest.tomlfile import KeyLines, Table, dotted, read_table


def read(tmp_path: Path, text: str) -> Table:
    path = tmp_path / "file.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return read_table(path)


def error_of(tmp_path: Path, text: str, read_key: str) -> ConfigError:
    """The error from reading `read_key` ("a.b.c": tables, then a string) out of `text`."""
    *tables, key = read_key.split(".")
    table = read(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        for name in tables:
            table = table.table(name, required=True)
        table.string(key)
    return caught.value


# ------------------------------------------------------------------ where keys are written


def test_dotted_writes_array_indexes_in_brackets() -> None:
    assert dotted(("sources", 2, "kind")) == "sources[2].kind"
    assert dotted(("a", 0, 1)) == "a[0][1]"
    assert dotted(()) == ""


def test_quoted_and_dotted_keys_are_found_on_their_line(tmp_path: Path) -> None:
    text = """\
    [server]
    "the host".name = 1
    'raw key' = 2
    port . number = 3
    """
    assert error_of(tmp_path, text, "server.the host.name").line == 2
    assert error_of(tmp_path, text, "server.raw key").line == 3
    assert error_of(tmp_path, text, "server.port.number").line == 4


def test_keys_in_inline_tables_inside_arrays_get_their_own_line(tmp_path: Path) -> None:
    table = read(
        tmp_path,
        """\
        items = [
            { kind = "a" },
            # a comment, with = and [ in it
            { kind = "b", tags = [
                "x",
                3,
            ] },
        ]
        """,
    )
    error = table.error("items", 1, "tags", 1, message="x")
    assert (error.key, error.line) == ("items[1].tags[1]", 6)


def test_array_items_are_counted_past_commas_inside_strings(tmp_path: Path) -> None:
    table = read(tmp_path, "list = [\n  'a, b',\n  \"c, d\",\n  4,\n]\n")
    with pytest.raises(ConfigError) as caught:
        table.strings("list")
    assert (caught.value.key, caught.value.line) == ("list[2]", 4)


def test_nested_arrays_of_tables_count_items_per_parent(tmp_path: Path) -> None:
    table = read(
        tmp_path,
        """\
        [[shelf]]
        name = "first"
        [[shelf.book]]
        title = "a"

        [[shelf]]
        name = "second"
        [[shelf.book]]
        title = "b"
        [[shelf.book]]
        title = 3
        """,
    )
    second = table.tables("shelf")
    assert second is not None
    books = second[1].tables("book")
    assert books is not None
    with pytest.raises(ConfigError) as caught:
        books[1].string("title")
    assert (caught.value.key, caught.value.line) == ("shelf[1].book[1].title", 11)


@pytest.mark.parametrize(
    "tricky",
    [
        "'''it's\n[fake]\nlater = 1'''''",  # a literal string ending in two quotes
        '"""say \\"""\n[fake]\nlater = 1\n"""',  # an escaped quote before two more
        '"a # not a comment [fake]"',
        '"a \\" b"',  # an escaped quote in a one-line string
        '"""C:\\\\"""',  # an escaped backslash right before the closing quotes
        "'C:\\\\path\\\\'",
    ],
)
def test_look_alike_text_inside_strings_is_not_taken_for_keys(tmp_path: Path, tricky: str) -> None:
    path = tmp_path / "file.toml"
    path.write_text(f"[t]\nvalue = {tricky}\nlater = 5\n", encoding="utf-8")
    table = read_table(path).table("t")
    line = 3 + tricky.count("\n")
    with pytest.raises(ConfigError) as caught:
        table.string("later")
    assert (caught.value.key, caught.value.line) == ("t.later", line)


def test_lines_found_before_a_scanning_surprise_are_kept() -> None:
    lines = KeyLines('first = 1\nsecond = "never closed\n')
    assert lines.near(("first",)) == 1
    assert lines.near(("second",)) == 2
    assert lines.near(("third",)) is None


def test_lines_are_only_looked_for_when_an_error_needs_one(tmp_path: Path) -> None:
    table = read(tmp_path, 'name = "x"\n\n[t]\ncount = "three"\n')
    assert table.string("name") == "x"
    inner = table.table("t")
    assert not table.lines.scanned and table.lines.found == {}
    with pytest.raises(ConfigError) as caught:
        inner.integer("count", 1, 0)
    assert (caught.value.key, caught.value.line) == ("t.count", 4)
    assert table.lines.scanned


def test_a_second_error_in_the_same_file_finds_its_line_too(tmp_path: Path) -> None:
    table = read(tmp_path, "a = true\nb = true\n")
    lines = [table.error(key, message="x").line for key in ("b", "a", "b")]
    assert lines == [2, 1, 2]


# ------------------------------------------------------------------ reading the file


def test_a_folder_is_refused_as_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder, not a TOML file"):
        read_table(tmp_path)


def test_toml_broken_at_the_very_end_points_at_the_last_line(tmp_path: Path) -> None:
    path = tmp_path / "file.toml"
    path.write_text("a = 1\nb = 2\nc = [1,\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_table(path)
    assert caught.value.line == 3
    assert "(at the end of the file)" in str(caught.value)


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "file.toml"
    path.write_bytes(b'\xef\xbb\xbfname = "x"\n')
    assert read_table(path).string("name") == "x"


# ------------------------------------------------------------------ typed getters


def test_a_number_accepts_integers_and_floats_but_not_booleans(tmp_path: Path) -> None:
    table = read(tmp_path, "whole = 3\nhalf = 0.5\nflag = true\n")
    assert (table.number("whole", 1.0), table.number("half", 1.0)) == (3.0, 0.5)
    assert table.number("absent", 7.5) == 7.5
    with pytest.raises(ConfigError, match="expected a number, got a boolean"):
        table.number("flag", 1.0)


def test_only_a_multiline_string_may_hold_line_breaks(tmp_path: Path) -> None:
    table = read(tmp_path, 'text = """\nfirst\nsecond"""\n')
    assert table.string("text", multiline=True) == "first\nsecond"
    with pytest.raises(ConfigError, match="line breaks or control characters"):
        table.string("text")


@pytest.mark.parametrize(
    ("escape", "one_line", "multi_line"),
    [
        ("\\t", True, True),
        ("\\n", False, True),
        ("\\r", False, True),
        ("\\u0000", False, False),
        ("\\u000b", False, False),
        ("\\u001f", False, False),
        ("\\u007f", False, False),
        ("\\u0080", True, True),  # a C1 control: not refused, as before
        ("\\u2028", True, True),
    ],
)
def test_control_characters_are_refused_but_tabs_and_multi_line_breaks(
    tmp_path: Path, escape: str, one_line: bool, multi_line: bool
) -> None:
    table = read(tmp_path, f'text = "a{escape}b"\n')
    for multiline, allowed in ((False, one_line), (True, multi_line)):
        if allowed:
            assert table.string("text", multiline=multiline).startswith("a")
        else:
            with pytest.raises(ConfigError, match="control characters"):
                table.string("text", multiline=multiline)


@pytest.mark.parametrize(
    ("value", "key", "fragment"),
    [
        ('["a", " "]', "list[1]", "empty entry"),
        ('["a\\u0007"]', "list[0]", "control character"),
        ('["a", 1979-05-27]', "list[1]", "expected a string, got a date"),
        ('"a"', "list", "expected an array of strings, got a string"),
    ],
)
def test_arrays_of_strings_refuse_blank_odd_and_misplaced_entries(
    tmp_path: Path, value: str, key: str, fragment: str
) -> None:
    table = read(tmp_path, f"list = {value}\n")
    with pytest.raises(ConfigError) as caught:
        table.strings("list")
    assert (caught.value.key, caught.value.line) == (key, 1)
    assert fragment in str(caught.value)


def test_array_entries_are_stripped_and_an_absent_array_is_empty(tmp_path: Path) -> None:
    table = read(tmp_path, 'list = [" a ", "b"]\n')
    assert table.strings("list") == ("a", "b")
    assert table.strings("absent") == ()


def test_an_absent_optional_table_is_empty_and_an_absent_array_of_tables_is_none(
    tmp_path: Path,
) -> None:
    table = read(tmp_path, "x = 1\n")
    assert dict(table.table("t").data) == {}
    assert table.tables("t") is None
    with pytest.raises(ConfigError, match="missing required key 't'"):
        table.table("t", required=True)


def test_an_unknown_key_gets_the_given_hint_over_a_guess_and_no_hint_when_nothing_is_close(
    tmp_path: Path,
) -> None:
    table = read(tmp_path, "[t]\ncolour = 1\n").table("t")
    with pytest.raises(ConfigError) as caught:
        table.check_keys(["color"])
    assert str(caught.value).endswith("unknown key 'colour' in [t]; did you mean 'color'?")
    with pytest.raises(ConfigError) as caught:
        table.check_keys(["color"], {"colour": "spell it the American way"})
    assert str(caught.value).endswith("in [t]; spell it the American way")
    with pytest.raises(ConfigError) as caught:
        table.check_keys(["size"])
    assert str(caught.value).endswith("unknown key 'colour' in [t]")
