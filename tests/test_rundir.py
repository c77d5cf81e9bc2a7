"""Run folders (source.rundir): names claimed atomically, so runs started at once never share a folder."""
import json
import multiprocessing
import os
import subprocess
import sys

from source import rundir
from tests.conftest import ROOT, SMALL_NET

PROCESSES, ROUNDS = 6, 25


def _claim_rounds(barrier, root, rounds, out):
    """One process: in each round, wait for all the others, then claim "twin" under that round's two roots."""
    names = []
    for k in range(rounds):
        barrier.wait()
        names.append(rundir.claim("twin", [os.path.join(root, str(k), "r"), os.path.join(root, str(k), "c")]))
    out.put(names)


def test_processes_claiming_one_name_at_once_each_get_their_own(tmp_path):
    """Six processes claim "twin" at the same moment, 25 times over: each round gives six distinct names, each
    with its folder under both roots, and skips "twin" itself, which an earlier run holds under --logdir only."""
    for k in range(ROUNDS):
        os.makedirs(tmp_path / str(k) / "c" / "twin")
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(PROCESSES), context.Queue()
    workers = [context.Process(target=_claim_rounds, args=(barrier, str(tmp_path), ROUNDS, out))
               for _ in range(PROCESSES)]
    for w in workers:
        w.start()
    got = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    expected = {f"twin_{n}" for n in range(2, PROCESSES + 2)}
    for k in range(ROUNDS):
        names = [names[k] for names in got]
        assert sorted(names) == sorted(expected), (k, names)
        assert set(os.listdir(tmp_path / str(k) / "r")) == expected
        assert set(os.listdir(tmp_path / str(k) / "c")) == expected | {"twin"}


def test_claim_with_one_root_for_both_and_a_taken_name(tmp_path):
    """--results and --logdir the same folder: one folder per run; a taken name moves on to the next free one."""
    root = str(tmp_path / "out")
    assert rundir.claim("run", [root, root]) == "run"
    assert rundir.claim("run", [root, os.path.join(root, ".")]) == "run_2"
    assert sorted(os.listdir(root)) == ["run", "run_2"]


def test_two_runs_started_at_once_with_one_name_keep_their_own_results(tmp_path):
    """Two real runs (two steps of the small network) started together with --name twin: two folders under each
    root, each with its own run's config, checkpoint, summary and scores, and each run names its own folder."""
    flags = ["--data", "embedded", "--steps", "2", "--batch", "64", "--threads", "1", *SMALL_NET, "--name", "twin",
             "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")]
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "run.py"), *flags, "--seed", seed], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in ("0", "1")]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert sorted(os.listdir(tmp_path / "r")) == sorted(os.listdir(tmp_path / "c")) == ["twin", "twin_2"]
    seeds = set()
    for name in ("twin", "twin_2"):
        summary = json.loads((tmp_path / "r" / name / "summary.json").read_text())
        config = json.loads((tmp_path / "c" / name / "config.json").read_text())
        state = json.loads((tmp_path / "c" / name / "state.json").read_text())
        assert summary["name"] == name and summary["config"] == config
        assert os.path.basename(state["checkpoint"]) == "model.ckpt-2"
        assert (tmp_path / "c" / name / "model.ckpt-2.index").is_file()
        assert (tmp_path / "r" / name / "scores.csv").is_file()
        seeds.add(config["training"]["seed"])
        # the run that wrote this folder is the one whose last line names it
        out = outs[config["training"]["seed"]][0]
        assert out.strip().splitlines()[-1].endswith(os.path.join(str(tmp_path / "r"), name) + "  (report.md)")
    assert seeds == {0, 1}
