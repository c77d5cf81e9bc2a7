"""A sweep's sub-runs in worker processes (--jobs N): each sub-run is `run.py --part-of NAME` in its own
process, with its own TensorFlow runtime and its share of the cores, so one sub-run's crash or leak cannot
take the others, and two one-thread runs can keep two cores busy. The table is then built as a straight
sweep builds it."""
import logging
import os
import subprocess
import sys
import time

from source.stops import Interrupted, StopFlag

logger = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # the repository (run.py)


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
