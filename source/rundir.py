"""The run folders: every file name and format under <logdir>/<run>/ and <results>/<run>/.

Everything is written atomically (a temporary name, then a rename), so an interrupted run never
leaves half a file, and read back here, so no other module knows a file name or its layout.
"""
import contextlib
import csv
import json
import os

import numpy as np


@contextlib.contextmanager
def atomic(path, mode="w"):
    """Open a temporary file beside path; rename it over path when the block ends without error."""
    tmp = path + ".tmp"
    with open(tmp, mode, **({"newline": ""} if mode == "w" else {})) as f:
        yield f
    os.replace(tmp, path)


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
    """A JSON file written by write_json."""
    with open(path) as f:
        return json.load(f)


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


def unique_name(name, roots):
    """name, name_2, name_3, ...: the first that exists under none of the roots."""
    candidate, n = name, 1
    while any(os.path.exists(os.path.join(r, candidate)) for r in roots):
        n += 1
        candidate = f"{name}_{n}"
    return candidate


class RunDir:
    """The two folders of one run (or of a sweep): <logdir>/<name> and <results>/<name>."""

    def __init__(self, logdir, results, name):
        self.name = name
        self.log = os.path.join(logdir, name)
        self.results = os.path.join(results, name)

    # paths
    config_path = property(lambda self: os.path.join(self.log, "config.json"))
    state_path = property(lambda self: os.path.join(self.log, "state.json"))
    summary_path = property(lambda self: os.path.join(self.results, "summary.json"))
    scores_path = property(lambda self: os.path.join(self.results, "scores.csv"))
    valid_scores_path = property(lambda self: os.path.join(self.results, "valid_scores.csv"))
    report_path = property(lambda self: os.path.join(self.results, "report.md"))
    sweep_csv_path = property(lambda self: os.path.join(self.results, "sweep.csv"))
    sweep_md_path = property(lambda self: os.path.join(self.results, "sweep.md"))
    restoration_dir = property(lambda self: os.path.join(self.results, "restoration"))
    grid_dir = property(lambda self: os.path.join(self.results, "grids"))
    checkpoint_prefix = property(lambda self: os.path.join(self.log, "model.ckpt"))

    def figure(self, name):
        """Path of a figure in the results folder (name without .png)."""
        return os.path.join(self.results, name + ".png")

    def sub(self, name):
        """A run inside this one: a sweep's sub-run, or the autoencoder baseline of a run."""
        sub = RunDir("", "", name)
        sub.log, sub.results = os.path.join(self.log, name), os.path.join(self.results, name)
        return sub

    # config.json: the flags a run was made with
    def write_config(self, config):
        write_json(config, self.config_path)

    def read_config(self):
        return read_json(self.config_path)

    # state.json: the training loop's position, beside the Saver's checkpoints
    def write_state(self, state):
        write_json(state, self.state_path)

    def read_state(self):
        return read_json(self.state_path)

    def has_state(self):
        return os.path.isfile(self.state_path)

    # summary.json: metrics, threshold, data counts, config, timings, versions
    def write_summary(self, summary):
        write_json(summary, self.summary_path)

    def read_summary(self):
        return read_json(self.summary_path)

    def is_finished(self):
        return os.path.isfile(self.summary_path)

    # scores.csv and valid_scores.csv
    def write_scores(self, labels, anomalous, scores, verdicts):
        rows = [[i, int(labels[i]), int(anomalous[i]), float(scores[i]), int(verdicts[i])] for i in range(len(scores))]
        write_csv(rows, ["index", "label", "anomalous", "score", "predicted_anomalous"], self.scores_path)

    def write_valid_scores(self, scores):
        write_csv([[float(v)] for v in scores], ["valid_score"], self.valid_scores_path)

    def read_valid_scores(self):
        with open(self.valid_scores_path) as f:
            return np.array([float(row["valid_score"]) for row in csv.DictReader(f)])

    # report.md
    def write_report(self, markdown):
        write_text(markdown, self.report_path)

    # score_<input>/: new images scored with this run (--score)
    def new_score_dir(self, stem):
        """A new folder score_<stem>[_N] in the results folder; returns its path."""
        path = os.path.join(self.results, unique_name(f"score_{stem}", [self.results]))
        os.makedirs(path)
        return path

    @staticmethod
    def write_new_scores(folder, names, scores, percentiles, verdicts, key="file"):
        write_csv([[n, float(s), f"{p:.1f}", "anomalous" if v else "normal"]
                   for n, s, p, v in zip(names, scores, percentiles, verdicts)],
                  [key, "score", "valid_percentile", "verdict"], os.path.join(folder, "scores.csv"))


class RecordDir:
    """Committed records of a sweep: <records>/<sweep>/config.json and one <sub-run>.json per finished
    sub-run (its summary.json, no checkpoints or figures). A table grows across machines and sessions from
    these files; a resumed sweep takes each record as a finished sub-run."""

    def __init__(self, root, sweep):
        self.path = os.path.join(root, sweep)

    config_path = property(lambda self: os.path.join(self.path, "config.json"))

    def write_config(self, config):
        os.makedirs(self.path, exist_ok=True)
        write_json(config, self.config_path)

    def read_config(self):
        return read_json(self.config_path)

    def has_config(self):
        return os.path.isfile(self.config_path)

    def _sub(self, name):
        return os.path.join(self.path, name + ".json")

    def has(self, name):
        return os.path.isfile(self._sub(name))

    def read(self, name):
        return read_json(self._sub(name))

    def write(self, name, summary):
        os.makedirs(self.path, exist_ok=True)
        write_json(summary, self._sub(name))

    def summaries(self):
        """Every sub-run record, by sub-run name."""
        if not os.path.isdir(self.path):
            return {}
        return {f[:-5]: read_json(os.path.join(self.path, f)) for f in sorted(os.listdir(self.path))
                if f.endswith(".json") and f != "config.json"}
