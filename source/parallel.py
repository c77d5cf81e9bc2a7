"""A sweep's sub-runs in worker processes (--jobs N): each sub-run is `run.py --part-of NAME` in its own
process, with its own TensorFlow runtime and its share of the cores, so one sub-run's crash or leak cannot
take the others, and two one-thread runs can keep two cores busy. The table is then built as a straight
sweep builds it."""
import logging
import os
import subprocess
import sys
import shlex
import time

from source.stops import Interrupted, StopFlag

logger = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# flags that choose a sweep's sub-runs, name it or size its processes, with the values each takes
SWEEP_FLAGS = {"--normal": 1, "--anomaly": 1, "--seed": 1, "--seeds": 1, "--jobs": 1, "--name": 1, "--threads": 1,
               "--resume": 0}


def _drop(argv, flags):
    """argv less the given flags ({flag: how many values follow it}) and their values."""
    out, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
        elif arg.split("=")[0] in flags:
            skip = flags[arg] if "=" not in arg else 0
        else:
            out.append(arg)
    return out


def part_argv(argv):
    """A sweep's flags less SWEEP_FLAGS: what each worker's `run.py --part-of` shares."""
    return _drop(argv, SWEEP_FLAGS)


def resume_command(argv, name):
    """The command line that continues run (or sweep) `name`: its folder's name, not the --name asked, which an
    earlier run may have taken (then name is <name>_2)."""
    argv = _drop(argv, {"--resume": 0} if "--part-of" in argv else {"--resume": 0, "--name": 1})
    return " ".join(["python", "run.py"] + argv + ([] if "--part-of" in argv else ["--name", name]) + ["--resume"])


def sub_run_command(command, sweep, protocol, digit, seed, records=True):
    """The job-array command line that continues, or makes again, one sub-run of a sweep, from the command
    line a sweep or one of its tasks was made with ("python run.py ..."; "..." for the flags when unknown);
    records=False drops --records (a sub-run with a record would be kept from it, not evaluated again)."""
    argv = shlex.split(command)[2:] if command.startswith("python run.py") else ["..."]
    drop = {"--part-of": 1} if records else {"--part-of": 1, "--records": 1}
    return " ".join(["python", "run.py"] + _drop(part_argv(argv), drop)
                    + [f"--{protocol}", str(digit), "--seed", str(seed), "--part-of", sweep, "--resume"])


def child_command(base_argv, protocol, digit, seed, name, threads, resume):
    """run.py's command line for one sub-run of sweep `name`."""
    return ([sys.executable, os.path.join(ROOT, "run.py")] + list(base_argv)
            + [f"--{protocol}", str(digit), "--seed", str(seed), "--part-of", name, "--threads", str(threads)]
            + (["--resume"] if resume else []))


def run_subprocesses(commands, jobs, log_dir):
    """Run {label: command} with at most `jobs` at once, each one's output in log_dir/<label>.log; a SIGINT
    or SIGTERM is passed on to the running ones, which checkpoint, and then raises stops.Interrupted.
    Returns {label: exit status}."""
    pending, running, status, forwarded = list(commands.items()), {}, {}, set()
    with StopFlag() as stop:
        while pending or running:
            for label, proc in running.items():   # a signal here: each running sub-run checkpoints and stops
                if stop.signum and label not in forwarded:
                    proc.send_signal(stop.signum)
                    forwarded.add(label)
            while pending and len(running) < jobs and not stop.signum:
                label, command = pending.pop(0)
                logger.info(f"[sweep] {label}: started in its own process")
                with open(os.path.join(log_dir, label + ".log"), "a") as out:   # the child holds its own copy
                    running[label] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                                      start_new_session=True)
            for label, proc in list(running.items()):
                if proc.poll() is not None:
                    status[label] = proc.returncode
                    del running[label]
                    with open(os.path.join(log_dir, label + ".log")) as f:
                        tail = f.read().strip().splitlines()[-1:] or [""]
                    logger.info(f"[sweep] {label}: " + ("done" if proc.returncode == 0 else
                                                f"exit {proc.returncode}: {tail[0]}"))
            if stop.signum and not running:
                raise Interrupted(stop.signum, None)
            time.sleep(0.2)
    return status
