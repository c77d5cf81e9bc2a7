"""Files (source.files): records without machine paths, writes that a failure leaves whole, damaged files named."""
import json
import os

import pytest

from source import files
from source.files import portable_command, portable_path


def test_portable_paths(tmp_path, monkeypatch):
    """Under the working directory: relative; elsewhere: the file name alone."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    assert portable_path(str(tmp_path / "results" / "run")) == os.path.join("results", "run")
    assert portable_path("results") == "results"
    assert portable_path("/somewhere/else/mnist.npz") == "mnist.npz"
    assert portable_command(["--data", "/somewhere/else/mnist.npz", "--results", str(tmp_path / "r"),
                             "--lr", "2e-4"]) == "--data mnist.npz --results r --lr 2e-4"


def test_a_failed_write_leaves_the_earlier_file_whole_and_no_temporary(tmp_path, monkeypatch):
    """A write stopped halfway (here json.dump raising after half its text, as a full disk or a signal would):
    the earlier summary.json reads as before and no temporary file is left beside it."""
    path = str(tmp_path / "summary.json")
    files.write_json({"AUROC": 0.9, "name": "first"}, path)

    def half(obj, f, **kwargs):
        f.write(json.dumps(obj)[:10])
        raise KeyboardInterrupt
    monkeypatch.setattr(json, "dump", half)
    with pytest.raises(KeyboardInterrupt):
        files.write_json({"AUROC": 0.5, "name": "second"}, path)
    assert files.read_json(path) == {"AUROC": 0.9, "name": "first"}
    assert os.listdir(tmp_path) == ["summary.json"]


@pytest.mark.parametrize("content, why", [('{"AUROC": 0.9, "na', "Unterminated string starting at: line 1 column 16 "
                                                                "(char 15)"),
                                         ("", "Expecting value: line 1 column 1 (char 0)"),
                                         (b"\xff\xfe{", "'utf-8' codec can't decode byte 0xff in position 0: "
                                                        "invalid start byte")])
def test_a_damaged_json_file_is_named_with_why(content, why, tmp_path):
    """Cut short, emptied or not text: DamagedFile naming the file and the parser's reason."""
    path = tmp_path / "summary.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(files.DamagedFile) as err:
        files.read_json(str(path))
    assert str(err.value) == f"{path} is damaged ({why})"
