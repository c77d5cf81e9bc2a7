"""A sweep's worker processes (source.tools.parallel): the flags each worker shares, the command lines of one
sub-run, of a resume and of a job-array rerun, and the pool that runs commands at most `jobs` at once, with
each one's output in its log and a signal passed on to the running ones."""
import os
import signal
import subprocess
import sys

import pytest

from source import flags
from source.tools import parallel


def test_part_argv_drops_what_chooses_the_sub_runs():
    argv = ["--normal", "all", "--seeds", "3", "--jobs=2", "--name", "x", "--resume", "--lr", "2e-4", "--threads", "1"]
    assert flags.part_argv(argv) == ["--lr", "2e-4"]


def test_part_argv_keeps_every_other_flag_with_its_value_in_order():
    """Both spellings (--flag value, --flag=value) of the sweep's flags go, each with its own value only; every
    other flag stays, with its value, in order."""
    argv = ["--data", "embedded", "--anomaly=3", "--seed=2", "--batch", "64", "--seeds", "2", "--records", "rec",
            "--lr=1e-4", "--epoch", "3", "--name=s", "--widths", "8,16"]
    assert flags.part_argv(argv) == ["--data", "embedded", "--batch", "64", "--records", "rec", "--lr=1e-4",
                                        "--epoch", "3", "--widths", "8,16"]
    assert flags.part_argv([]) == []


def test_resume_and_rerun_commands_name_the_folder_the_run_got():
    """--name twin that became twin_2 (twin was taken) resumes twin_2, not the earlier run; a sub-run is rerun as
    its sweep's job-array task."""
    assert flags.resume_command(["--epoch", "3", "--name", "twin"], "twin_2") == \
        "python run.py --epoch 3 --name twin_2 --resume"
    assert flags.resume_command(["--epoch", "3", "--resume"], "embedded_normal1") == \
        "python run.py --epoch 3 --name embedded_normal1 --resume"
    assert flags.resume_command(["--normal", "2", "--part-of", "s"], "normal2_seed0") == \
        "python run.py --normal 2 --part-of s --resume"
    assert flags.sub_run_command("python run.py --anomaly all --seeds 3 --name s --jobs 2 --lr 2e-4", "s",
                                    "anomaly", 3, 1) == \
        "python run.py --lr 2e-4 --anomaly 3 --seed 1 --part-of s --resume"


def test_sub_run_command_without_records_and_from_an_unknown_command():
    """records=False drops --records (and its value); a task's own command line loses its --part-of for the
    one asked; a command line not made by run.py shows "..." for the flags."""
    command = "python run.py --normal 4 --seed 1 --part-of old --records rec --batch 64"
    assert flags.sub_run_command(command, "sweep", "normal", 4, 1) == \
        "python run.py --records rec --batch 64 --normal 4 --seed 1 --part-of sweep --resume"
    assert flags.sub_run_command(command, "sweep", "normal", 4, 1, records=False) == \
        "python run.py --batch 64 --normal 4 --seed 1 --part-of sweep --resume"
    assert flags.sub_run_command("", "sweep", "anomaly", 0, 2) == \
        "python run.py ... --anomaly 0 --seed 2 --part-of sweep --resume"


def test_child_command_runs_run_py_for_one_sub_run():
    """This interpreter on the repository's run.py, the shared flags, then the sub-run's digit and seed, its sweep,
    its threads, and --resume only when asked."""
    run_py = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "run.py")
    shared = flags.part_argv(["--anomaly", "all", "--seeds", "2", "--jobs", "2", "--lr", "1e-4"])
    assert parallel.child_command(shared, "anomaly", 7, 1, "sweep", 2, resume=False) == [
        sys.executable, run_py, "--lr", "1e-4", "--anomaly", "7", "--seed", "1", "--part-of", "sweep", "--threads", "2"]
    assert parallel.child_command((), "normal", 0, 3, "s_2", 1, resume=True) == \
        [sys.executable, run_py, "--normal", "0", "--seed", "3", "--part-of", "s_2", "--threads", "1", "--resume"]


def python(code):
    """The command line that runs code in this interpreter."""
    return [sys.executable, "-c", code]


def test_run_subprocesses_reports_each_status_and_keeps_each_output_in_its_log(tmp_path, logged):
    """Three commands, two at once: `waits` ends well only if `marks` runs beside it (two ran at once), `fails`
    exits 3; each one's stdout and stderr go to <label>.log after what an earlier run left there, and the
    failure's line names its status and its log's last line."""
    mark = tmp_path / "mark"
    waits = ("import os, sys, time\nfor _ in range(3000):\n    if os.path.exists(%r): sys.exit(0)\n"
             "    time.sleep(0.1)\nsys.exit(1)" % str(mark))
    (tmp_path / "fails.log").write_text("an earlier attempt\n")
    commands = {"waits": python(waits), "marks": python(f"open({str(mark)!r}, 'w').close(); print('made it')"),
                "fails": python("import sys; print('to stdout', flush=True); sys.stderr.write('last words\\n'); "
                                "sys.exit(3)")}
    status = parallel.run_subprocesses(commands, 2, str(tmp_path))
    assert status == {"waits": 0, "marks": 0, "fails": 3}
    assert (tmp_path / "marks.log").read_text() == "made it\n"
    assert (tmp_path / "fails.log").read_text().splitlines() == ["an earlier attempt", "to stdout", "last words"]
    assert (tmp_path / "waits.log").read_text() == ""
    assert sorted(logged.lines) == sorted([f"[sweep] {label}: started in its own process" for label in commands]
                                          + ["[sweep] waits: done", "[sweep] marks: done",
                                             "[sweep] fails: exit 3: last words"])


def test_run_subprocesses_with_one_job_runs_one_at_a_time_in_order(tmp_path, logged):
    """jobs=1: each command starts after the one before it ended, in the order given."""
    commands = {label: python("pass") for label in ("c", "a", "b")}
    assert parallel.run_subprocesses(commands, 1, str(tmp_path)) == {"c": 0, "a": 0, "b": 0}
    assert logged.lines == [line for label in ("c", "a", "b")
                            for line in (f"[sweep] {label}: started in its own process", f"[sweep] {label}: done")]


def test_a_signal_is_passed_on_to_the_running_commands_and_none_is_started_after_it(tmp_path, logged,
                                                                                     signal_on_call):
    """SIGTERM right after the first command started: that command gets it (and ends by it), the second never
    starts, and the pool raises Interrupted with the signal."""
    from source import stops
    signal_on_call(subprocess, "Popen", signal.SIGTERM, 1)
    commands = {"first": python("import time; time.sleep(120)"), "second": python("pass")}
    with pytest.raises(stops.Interrupted) as caught:
        parallel.run_subprocesses(commands, 1, str(tmp_path))
    assert caught.value.signum == signal.SIGTERM
    assert logged.lines == ["[sweep] first: started in its own process", f"[sweep] first: exit {-signal.SIGTERM}: "]
    assert not (tmp_path / "second.log").exists()
