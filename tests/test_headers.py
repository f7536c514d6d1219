"""`digest.headers`: the message's header fields written directly. Read back by the email
package, each says exactly what was meant, and nothing in a value can add a field."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest import headers
from digest.errors import DigestError
from digest.sanitize import clean_header_text

header_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200
).map(clean_header_text)


@settings(max_examples=150, deadline=None)
@given(header_text)
def test_a_written_subject_reads_back_as_the_same_text_on_lines_of_78_columns(
    value: str,
) -> None:
    field = headers.fold("Subject", headers.header_words(value))
    parsed = email.message_from_bytes((field + "\r\n").encode("ascii"), policy=email.policy.default)
    assert list(parsed.keys()) == ["Subject"]
    assert parsed["Subject"] == value
    lines = field.split("\r\n")[:-1]
    assert all(len(line) <= 78 or len(line.split()) <= 2 for line in lines)  # a long word


@settings(max_examples=150, deadline=None)
@given(header_text)
def test_a_written_display_name_reads_back_as_the_same_name(name: str) -> None:
    words = headers.address(name, "ada@example.org")
    if words is None:  # quoting needed: the email package writes it (see below)
        return
    field = headers.fold("To", words)
    parsed = email.message_from_bytes((field + "\r\n").encode("ascii"), policy=email.policy.default)
    assert list(parsed.keys()) == ["To"]
    [address] = parsed["To"].addresses
    assert (address.display_name, address.addr_spec) == (name, "ada@example.org")


def test_a_header_value_with_a_line_break_is_refused_before_it_is_encoded() -> None:
    for value in ("a\r\nBcc: x@e.t", "a\nb", "a\u2028b", "a\x85b"):
        with pytest.raises(DigestError, match="line break"):
            headers.header_words(value)


def test_a_word_that_looks_like_an_encoded_word_is_encoded_and_reads_back_literally() -> None:
    smuggled = "=?utf-8?q?=0D=0ABcc:_x@e.t?="
    field = headers.fold("Subject", headers.header_words(f"on {smuggled} today"))
    assert smuggled not in field
    parsed = email.message_from_bytes(field.encode("ascii") + b"\r\n", policy=email.policy.default)
    assert parsed["Subject"] == f"on {smuggled} today" and parsed["Bcc"] is None


def test_the_header_guard_refuses_an_extra_field_a_missing_one_and_a_stray_line_feed() -> None:
    names = ("From", "To")
    headers.check_head("From: a@b\r\nTo: c@d,\r\n e@f\r\n", names)
    for head in (
        "From: a@b\r\nBcc: x@e.t\r\nTo: c@d\r\n",
        "From: a@b\r\n",
        "From: a@b\nBcc: x@e.t\r\nTo: c@d\r\n",
        "From: a@b\r\nTo: Zoë <c@d>\r\n",
    ):
        with pytest.raises(DigestError):
            headers.check_head(head, names)
