"""Markdown for generated text: the one table writer, and the marked blocks <!-- KIND:NAME --> ...
<!-- /KIND:NAME --> that generated text fills in a file (kind: table for the sweeps' tables, study and
rescore for the study's)."""
import re


def table(header, rows):
    """A Markdown table: header a list of str, rows lists of cells already formatted as str, each as many as
    the header; the text ends in a newline."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells under a header of {len(header)}: {row}")

    def line(cells):
        return "| " + " | ".join(cells) + " |\n"
    return line(header) + "|" + "---|" * len(header) + "\n" + "".join(map(line, rows))


def has_markers(text, kind, name):
    """Whether a Markdown text has the marked block <!-- KIND:NAME --> ... <!-- /KIND:NAME -->."""
    return f"<!-- {kind}:{name} -->\n" in text and f"<!-- /{kind}:{name} -->" in text


def fill(text, kind, name, block):
    """The text with the block between its <!-- KIND:NAME --> markers replaced; ValueError where it has none."""
    start, end = re.escape(f"<!-- {kind}:{name} -->"), re.escape(f"<!-- /{kind}:{name} -->")
    pattern = re.compile(rf"({start}\n).*?({end})", re.S)
    if not pattern.search(text):
        raise ValueError(f"the text has no <!-- {kind}:{name} --> ... <!-- /{kind}:{name} --> markers")
    return pattern.sub(lambda m: m.group(1) + block + m.group(2), text)
