"""Setting one-line values in a YAML file's text: only those lines change."""

from __future__ import annotations

import pytest
import yaml

from hsc.errors import HscError
from hsc_app.yaml_edit import leaves, set_values

TEXT = """\
# top comment
a: 1          # about a

b:
  c: old      # about c
  d: [1, 2]
  # trailing comment of b
e: x
"""


def test_leaves_give_value_text_and_tail():
    found = leaves(TEXT, "f.yaml")
    assert found[("a",)].value == 1 and found[("a",)].text == "1" and found[("a",)].tail == "1          # about a"
    assert found[("b", "c")].value == "old" and ("b", "d") not in found  # sequences are not one-line values


def test_set_replaces_the_value_and_its_comment_and_nothing_else():
    result = set_values(TEXT, {("b", "c"): "new      # new comment", ("a",): "2"}, "f.yaml")
    assert result == TEXT.replace("c: old      # about c", "c: new      # new comment").replace(
        "a: 1          # about a", "a: 2")


def test_missing_keys_go_at_the_end_of_their_section_with_its_indentation():
    result = set_values(TEXT, {("b", "f", "g"): "3", ("h",): "4", ("b", "d2"): "5"}, "f.yaml")
    assert yaml.safe_load(result) == {"a": 1, "b": {"c": "old", "d": [1, 2], "d2": 5, "f": {"g": 3}}, "e": "x", "h": 4}
    assert "  d: [1, 2]\n  f:\n    g: 3\n  d2: 5\n  # trailing comment of b\n" in result


def test_an_empty_section_and_an_empty_file_are_filled():
    assert set_values("a:\nb: 1\n", {("a", "c"): "2"}, "f.yaml") == "a:\n  c: 2\nb: 1\n"
    assert set_values("a:", {("a",): "2"}, "f.yaml") == "a: 2"
    assert set_values("# only a comment", {("a", "c"): "2"}, "f.yaml") == "# only a comment\n\na:\n  c: 2\n"


@pytest.mark.parametrize("text, key, message", [
    ("a: {c: 1}\n", ("a", "c"), r"f.yaml: line 1: 'a.c' is inside a \{...\} mapping"),
    ("a: |\n  x\n  y\n", ("a",), r"f.yaml: line 1: 'a' is not a one-line value"),
    ("a: 1\n", ("a", "c"), r"f.yaml: line 1: 'a' holds a value, not the section 'a.c' needs"),
    ("a: [1\n", ("a",), r"f.yaml: line 2 is not valid YAML"),
], ids=["flow mapping", "block scalar", "value for section", "broken yaml"])
def test_what_cannot_be_edited_safely_is_one_line_naming_file_line_and_key(text, key, message):
    with pytest.raises(HscError, match=message):
        set_values(text, {key: "2"}, "f.yaml")
