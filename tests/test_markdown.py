"""The one Markdown table writer and the marked blocks it fills (source.markdown)."""
import pytest

from source import markdown


def test_table_is_header_rule_and_rows_ending_in_a_newline():
    assert markdown.table(["digit", "ADAE"], [["1", "0.900 ± 0.010"], ["mean", ""]]) == (
        "| digit | ADAE |\n|---|---|\n| 1 | 0.900 ± 0.010 |\n| mean |  |\n")
    assert markdown.table(["a"], []) == "| a |\n|---|\n"


def test_a_row_of_another_width_than_the_header_is_refused():
    with pytest.raises(ValueError, match="a row of 1 cells under a header of 2"):
        markdown.table(["a", "b"], [["1"]])


def test_fill_replaces_only_its_own_marked_block():
    text = "before\n<!-- table:x -->\nold\n<!-- /table:x -->\n<!-- study:x -->\nkept\n<!-- /study:x -->\nafter\n"
    assert markdown.has_markers(text, "table", "x") and markdown.has_markers(text, "study", "x")
    assert not markdown.has_markers(text, "rescore", "x") and not markdown.has_markers(text, "table", "y")
    assert markdown.fill(text, "table", "x", "new\n") == (
        "before\n<!-- table:x -->\nnew\n<!-- /table:x -->\n<!-- study:x -->\nkept\n<!-- /study:x -->\nafter\n")


def test_fill_without_the_markers_is_an_error():
    assert not markdown.has_markers("<!-- table:x -->\nno end\n", "table", "x")
    with pytest.raises(ValueError, match=r"no <!-- table:x --> \.\.\. <!-- /table:x --> markers"):
        markdown.fill("<!-- table:x -->\nno end\n", "table", "x", "new\n")
