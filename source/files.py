"""File formats every module writes with: atomic writes (a temporary name, then a rename, so an interrupted
run never leaves half a file), JSON, CSV, PNG bytes and text, and paths as committed records write them."""
import contextlib
import csv
import json
import os

import numpy as np


class DamagedFile(ValueError):
    """A file that cannot be read back (cut short, emptied, not what was written): one line naming it."""


@contextlib.contextmanager
def atomic(path, mode="w"):
    """Open a temporary file beside path; rename it over path when the block ends without error (the bytes on
    disk first, so a crash after the rename cannot leave an empty file); on an error the temporary goes."""
    tmp = f"{path}.{os.getpid()}.tmp"   # processes writing the same file (job-array tasks) do not collide
    try:
        with open(tmp, mode, **({"newline": ""} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:   # a full disk, a signal: the earlier file stays whole and no temporary is left
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(err, OSError) and not err.filename:   # a failed flush names no file: say which
            err.filename = path
        raise


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_json(obj, path):
    """JSON with indentation; NumPy values as plain numbers."""
    with atomic(path) as f:
        json.dump(obj, f, indent=2, default=_jsonable)


def read_json(path):
    """A JSON file written by write_json; DamagedFile naming it where it cannot be read."""
    try:
        with open(path) as f:
            return json.load(f)
    except (ValueError, OSError) as err:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DamagedFile(f"{path} is damaged ({getattr(err, 'strerror', None) or err})") from None


def write_csv(rows, header, path):
    """Rows under a header; floats as repr(), which reads back to the same float."""
    with atomic(path) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([[repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in row]
                          for row in rows])


def write_bytes(data, path):
    """Raw bytes (a PNG)."""
    with atomic(path, "wb") as f:
        f.write(data)


def write_text(text, path):
    """A text file (Markdown)."""
    with atomic(path) as f:
        f.write(text)


def portable_path(path):
    """A path as committed files record it: relative to the working directory when under it, else its file
    name alone, so no record names a folder of the machine that made it."""
    full = os.path.abspath(path)
    cwd = os.getcwd()
    if full == cwd or full.startswith(cwd + os.sep):
        return os.path.relpath(full, cwd)
    return os.path.basename(os.path.normpath(full)) or full


def portable_command(argv):
    """A command line whose path arguments are written with portable_path."""
    return " ".join(portable_path(a) if os.path.isabs(a) else a for a in argv)
