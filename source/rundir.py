"""The run folders: every file name and layout under <logdir>/<run>/ and <results>/<run>/, and of committed
records. Written atomically (source.files) and read back here, so no other module knows a file name (but a
checkpoint's own files, which the Saver names: source.neuralnet reads them and the fitted statistics beside them);
config.json and summary.json hold source.record's RunConfig and Summary.
"""
import csv
import glob
import os
import re
import shlex

import numpy as np

from source import flags
from source.files import DamagedFile, read_json, write_csv, write_json, write_text
from source.record import RunConfig, Summary


class FolderError(ValueError):
    """A run folder that cannot be used as asked (missing, another architecture, not writable): one line."""


def check_writable(flag, root):
    """Refuse a root that cannot be created or written, without creating anything."""
    path = os.path.abspath(root)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
        raise FolderError(f"{flag} {root} is not writable")


ARCHITECTURE = ("arch", "widths", "latent", "ksize", "code_channels", "objective")


def stored_config(run, records=None):
    """The RunConfig a run or sweep was made with: its config.json, else (a sweep on a clone that has only
    its committed records) the records'; None when neither exists."""
    if os.path.isfile(run.config_path):
        return run.read_config()
    if records and records.has_config():
        return records.read_config()
    return None


def check_same_experiment(run, config, records=None):
    """--resume/--test-only: run (or, for a sweep resumed on a clone, its committed records) must exist and
    hold the asked architecture, data and protocol."""
    stored = stored_config(run, records)
    if stored is None:
        raise FolderError(f"no run {run.name!r} (missing {run.config_path})")
    differ = [f"--{k.replace('_', '-')} {getattr(stored.model, k)} (asked {getattr(config.model, k)})"
              for k in ARCHITECTURE if getattr(stored.model, k) != getattr(config.model, k)]
    if differ:
        raise FolderError(f"run {run.name!r} was made with another architecture: " + ", ".join(differ))
    old, new = stored.data, config.data
    if (old.dataset, old.source, old.protocol, old.digits, old.split) != (
            new.dataset, new.source, new.protocol, new.digits, new.split):
        raise FolderError(f"run {run.name!r} used --data {old.source} --{old.protocol} "
                          f"{','.join(map(str, old.digits))} --split {old.split}; pass the same data and protocol")


def check_trained(run):
    """--score-images: run must hold a finished run's config and summary."""
    for path in (run.config_path, run.summary_path):
        if not os.path.isfile(path):
            raise FolderError(f"run {run.name!r} is missing {path}")


def default_name(source_name, config):
    """<data>_<protocol><digit|all>[_paper]: embedded_normal1, mnist_anomalyall, mnist_anomaly1_paper."""
    data = config.data
    return (f"{'embedded' if source_name == 'embedded' else data.dataset}_{data.protocol}"
            + ("all" if len(data.digits) > 1 else str(data.digits[0])) + ("_paper" if data.split == "paper" else ""))


def claim(name, roots):
    """name, name_2, name_3, ...: the first whose folder this process creates under every root. os.mkdir fails
    where the folder exists, so two processes started at once never get one name, and no earlier run's
    folder (under either root) is taken; a name half-claimed (its folder under one root only) is let go."""
    roots = list(dict.fromkeys(os.path.realpath(r) for r in roots))   # --results and --logdir may be one folder
    for root in roots:
        os.makedirs(root, exist_ok=True)
    for n in range(1, 100000):
        candidate, made = name if n == 1 else f"{name}_{n}", []
        try:
            for root in roots:
                os.mkdir(os.path.join(root, candidate))
                made.append(os.path.join(root, candidate))
            return candidate
        except FileExistsError:
            for folder in made:   # empty, and ours: no other process uses a folder it could not create
                os.rmdir(folder)
    raise FolderError(f"no free name {name}_N under {', '.join(roots)}")


def sub_name(protocol, digit, seed):
    """A sweep's sub-run folder name, the same whoever runs it (a sweep, or a job-array task with --part-of)."""
    return f"{protocol}{digit}_seed{seed}"


def sub_of(name):
    """(protocol, digit, seed) of a sub-run folder name; None for another name."""
    match = re.fullmatch(r"(normal|anomaly)(\d)_seed(\d+)", name)
    return (match[1], int(match[2]), int(match[3])) if match else None


def _read(path, what_to_do, parse=lambda values: values):
    """parse(the JSON at path); a file that cannot be read: FolderError naming it and what to do."""
    try:
        return parse(read_json(path))
    except DamagedFile as err:
        raise FolderError(f"{err}; {what_to_do}") from None


def _stored_command(*configs):
    """The command line of the first of these config.json files that reads; "" when none does."""
    for path in configs:
        if not os.path.isfile(path):
            continue
        try:
            return RunConfig.from_dict(read_json(path)).command
        except (DamagedFile, ValueError, KeyError, TypeError):
            continue
    return ""


class RunDir:
    """The two folders of one run (or of a sweep): <logdir>/<name> and <results>/<name>."""

    def __init__(self, logdir, results, name):
        self.name, self.parent = name, None
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
    best_dir = property(lambda self: os.path.join(self.log, "best_look"))   # --select best_look: its checkpoint

    def figure(self, name):
        """Path of a figure in the results folder (name without .png)."""
        return os.path.join(self.results, name + ".png")

    def sub(self, name):
        """A run inside this one: a sweep's sub-run, or the autoencoder baseline of a run."""
        sub = RunDir("", "", name)
        sub.log, sub.results, sub.parent = os.path.join(self.log, name), os.path.join(self.results, name), self
        return sub

    def rerun(self):
        """The command that continues this run, or evaluates it again from its last checkpoint when it has
        finished (a sweep's sub-run: as a job-array task of its sweep)."""
        if self.parent and sub_of(self.name):
            return flags.sub_run_command(_stored_command(self.parent.config_path, self.config_path),
                                            self.parent.name, *sub_of(self.name), records=False)
        command = _stored_command(self.config_path)
        return flags.resume_command(shlex.split(command)[2:] if command else ["..."], self.name)

    # config.json: the RunConfig a run (or sweep) was made with
    def write_config(self, config):
        write_json(config.to_dict(), self.config_path)

    def read_config(self):
        return _read(self.config_path, "it holds the run's settings: restore it from a copy (a finished run's "
                     "summary.json holds them as \"config\"), or start the run again", RunConfig.from_dict)

    # state.json: the training loop's position, beside the Saver's checkpoints; the same state of each kept
    # checkpoint in <checkpoint>.state.json, so a run whose newest checkpoint is damaged resumes from an older one
    def write_state(self, state, kept):
        """state.json and <checkpoint>.state.json of state["checkpoint"]; the states of checkpoints that are
        no longer in `kept` (the Saver's) go."""
        write_json(state, self._state_of(state["checkpoint"]))
        write_json(state, self.state_path)
        names = {os.path.basename(c) for c in kept}
        for path in glob.glob(os.path.join(glob.escape(self.log), "*.state.json")):
            if os.path.basename(path)[:-len(".state.json")] not in names:
                os.remove(path)

    def _state_of(self, checkpoint):
        return os.path.join(self.log, os.path.basename(checkpoint) + ".state.json")

    def read_state(self, checkpoint=None):
        """The loop state written with a checkpoint (None: the newest, state.json); FolderError where that
        checkpoint has none (a run of an earlier version kept only the newest's)."""
        again = f"start the run again under a new --name (its results so far: {self.results})"
        if checkpoint and os.path.isfile(self._state_of(checkpoint)):
            return _read(self._state_of(checkpoint), "delete it and " + again)
        state = _read(self.state_path, "delete it and " + again)
        if checkpoint and os.path.basename(state.get("checkpoint", "")) != os.path.basename(checkpoint):
            raise FolderError(f"{checkpoint} has no loop state of its own ({self.state_path} is that of "
                              f"{os.path.basename(state.get('checkpoint', '?'))}); {again}")
        return state

    def has_state(self):
        return os.path.isfile(self.state_path)

    # summary.json: the run's Summary
    def write_summary(self, summary):
        write_json(summary.to_dict(), self.summary_path)

    def read_summary(self):
        return _read(self.summary_path, f"delete it and rerun with: {self.rerun()}", Summary.from_dict)

    def is_finished(self):
        return os.path.isfile(self.summary_path)

    # scores.csv and valid_scores.csv
    def write_scores(self, labels, anomalous, scores, verdicts):
        rows = [[i, int(labels[i]), int(anomalous[i]), float(scores[i]), int(verdicts[i])] for i in range(len(scores))]
        write_csv(rows, ["index", "label", "anomalous", "score", "predicted_anomalous"], self.scores_path)

    def write_valid_scores(self, scores):
        write_csv([[float(v)] for v in scores], ["valid_score"], self.valid_scores_path)

    def read_valid_scores(self):
        try:
            with open(self.valid_scores_path) as f:
                return np.array([float(row["valid_score"]) for row in csv.DictReader(f)])
        except (ValueError, KeyError, TypeError, OSError, csv.Error) as err:
            raise FolderError(f"{self.valid_scores_path} is damaged ({err}); delete it and rerun with: "
                              f"{self.rerun()}") from None

    # report.md
    def write_report(self, markdown):
        write_text(markdown, self.report_path)

    # score_<input>/: new images scored with this run (--score)
    def new_score_dir(self, stem):
        """A new folder score_<stem>[_N] in the results folder; returns its path."""
        return os.path.join(self.results, claim(f"score_{stem}", [self.results]))

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

    def _sub(self, name):
        return os.path.join(self.path, name + ".json")

    def write_config(self, config):
        os.makedirs(self.path, exist_ok=True)
        write_json(config.to_dict(), self.config_path)

    def read_config(self):
        return _read(self.config_path, "delete it: the next sub-run written with --records writes it again",
                     RunConfig.from_dict)

    def has_config(self):
        return os.path.isfile(self.config_path)

    def write(self, name, summary):
        os.makedirs(self.path, exist_ok=True)
        write_json(summary.to_dict(), self._sub(name))

    def read(self, name):
        sub, rerun = sub_of(name), "python run.py ... --resume"
        if sub:
            rerun = flags.sub_run_command(_stored_command(self.config_path), os.path.basename(self.path), *sub)
            rerun += "" if " --records " in rerun else f" --records {os.path.dirname(self.path)}"
        return _read(self._sub(name), f"delete it and rerun that sub-run (trained again where its checkpoint is "
                     f"not on this machine) with: {rerun}", Summary.from_dict)

    def has(self, name):
        return os.path.isfile(self._sub(name))

    def summaries(self):
        """Every sub-run record, by sub-run name."""
        if not os.path.isdir(self.path):
            return {}
        return {f[:-5]: self.read(f[:-5]) for f in sorted(os.listdir(self.path))
                if f.endswith(".json") and f != "config.json"}
