"""Records without machine paths (source.files)."""
import os

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
