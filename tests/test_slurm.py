"""The cluster path: slurm/env.sh refuses a job without TensorFlow in one line; on a real SLURM (no mock),
slurm/submit.sh queues a job array of sub-runs and the dependent collect job, and a resubmission runs only
what is missing (skipped where no SLURM answers; .ci/run starts a one-node cluster from slurm/ci/, Debian's
slurm-wlm and munge, and stops it by its process ids)."""
import csv
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOGS = os.path.join(ROOT, "slurm", "logs")
# two digits of the embedded subset, three iterations of the smallest network; commas in EXTRA must arrive whole
EXTRA = "--steps 3 --batch 32 --widths 8,16,32 --latent 4"


def _slurm_answers():
    if not shutil.which("sbatch") or not shutil.which("squeue"):
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_slurm = pytest.mark.skipif(not _slurm_answers(), reason="no SLURM cluster answers (sinfo); .ci/run starts "
                                "a one-node one with slurm/ci/start.sh where slurm-wlm and munge can be installed")


def _submit(tmp_path, digits="0-1"):
    """Submit from a folder outside the repository, as a user on a login node might; returns the job ids."""
    env = dict(os.environ, PROTOCOL="normal", NAME="slurm_ci", DATA="embedded", EXTRA=EXTRA, ADAE_VENV=sys.prefix,
               RESULTS=str(tmp_path / "r"), LOGDIR=str(tmp_path / "c"), RECORDS=str(tmp_path / "records"))
    out = subprocess.run(["bash", os.path.join(ROOT, "slurm", "submit.sh"), f"--array={digits}", "--cpus-per-task=1"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    return words[words.index("array") + 2].rstrip(","), words[words.index("collect") + 2]


def _wait(*jobs, timeout=1200):
    """Until squeue lists none of the jobs (SLURM forgets finished jobs; no accounting here)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        left = subprocess.run(["squeue", "-h", "-j", ",".join(jobs), "-o", "%i"], capture_output=True, text=True)
        if left.returncode == 0 and not left.stdout.strip():
            return
        time.sleep(2)
    raise AssertionError(f"jobs {jobs} still queued after {timeout} s")


def _log(name):
    path = os.path.join(LOGS, name)
    assert os.path.isfile(path), f"no SLURM output {path}"
    with open(path) as f:
        return f.read()


def _table(tmp_path):
    with open(tmp_path / "r" / "slurm_ci" / "sweep.csv") as f:
        return {(int(r["digit"]), r["method"]): float(r["AUROC"]) for r in csv.DictReader(f)}


@pytest.mark.long
@needs_slurm
def test_job_array_collect_and_resubmission(tmp_path):
    """Two array tasks and the collect job: every sub-run's summary and record, its recipe as asked (the
    commas of --widths arrived), a table equal to the sub-runs' own numbers. Then digit 1's result, checkpoint
    and record are removed and the same command resubmitted: digit 1 trains again, digit 0 is kept untouched."""
    array, collect = _submit(tmp_path)
    _wait(array, collect)
    subs = {d: tmp_path / "r" / "slurm_ci" / f"normal{d}_seed0" for d in (0, 1)}
    for d, sub in subs.items():
        assert "[test] AUROC" in _log(f"adae-sweep-{array}_{d}.out")
        summary = json.loads((sub / "summary.json").read_text())
        assert summary["config"]["model"]["widths"] == [8, 16, 32] and summary["config"]["training"]["steps"] == 3
        assert json.loads((tmp_path / "records" / "slurm_ci" / f"normal{d}_seed0.json").read_text()) == summary
    assert "[collect] slurm_ci: 2 sub-runs" in _log(f"adae-collect-{collect}.out")
    table = _table(tmp_path)
    for d, sub in subs.items():
        summary = json.loads((sub / "summary.json").read_text())
        assert table[(d, "ADAE")] == pytest.approx(summary["metrics"]["AUROC"], rel=1e-12)
        assert table[(d, "MeanImage")] == pytest.approx(summary["baselines"]["MeanImage"]["AUROC"], rel=1e-12)
    kept_mtime = os.path.getmtime(subs[0] / "summary.json")

    shutil.rmtree(subs[1])
    shutil.rmtree(tmp_path / "c" / "slurm_ci" / "normal1_seed0")
    os.remove(tmp_path / "records" / "slurm_ci" / "normal1_seed0.json")
    array2, collect2 = _submit(tmp_path)
    _wait(array2, collect2)
    assert "normal0_seed0: finished earlier, kept" in _log(f"adae-sweep-{array2}_0.out")
    assert "[test] AUROC" not in _log(f"adae-sweep-{array2}_0.out")
    assert "[test] AUROC" in _log(f"adae-sweep-{array2}_1.out")
    assert os.path.getmtime(subs[0] / "summary.json") == kept_mtime
    assert (subs[1] / "summary.json").is_file() and (tmp_path / "records" / "slurm_ci" / "normal1_seed0.json").is_file()
    assert "[collect] slurm_ci: 2 sub-runs" in _log(f"adae-collect-{collect2}.out")
    assert set(_table(tmp_path)) == set(table)
    for job in (array, array2):
        for d in (0, 1):
            os.remove(os.path.join(LOGS, f"adae-sweep-{job}_{d}.out"))
    for job in (collect, collect2):
        os.remove(os.path.join(LOGS, f"adae-collect-{job}.out"))


@pytest.mark.parametrize("case", ["no_tensorflow", "not_the_root"])
def test_slurm_job_environment_fails_with_one_line(tmp_path, case):
    """slurm/env.sh, which every job script sources: no Python with TensorFlow, or a working directory that is
    not the repository, is one line and exit 2 (not an import error in every task)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").write_text("#!/bin/sh\nexit 1\n")   # a python that cannot import TensorFlow
    (fake_bin / "python").chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "ADAE_VENV": str(tmp_path / "no_venv"),
           "ADAE_ROOT": ROOT if case == "no_tensorflow" else str(tmp_path)}
    out = subprocess.run(["bash", "-c", f". {os.path.join(ROOT, 'slurm', 'env.sh')}; echo reached"], env=env,
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "reached" not in out.stdout
    assert len(out.stderr.strip().splitlines()) == 1
    assert ("no Python environment with TensorFlow" if case == "no_tensorflow" else "not the repository root") \
        in out.stderr
