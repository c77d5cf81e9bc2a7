"""How a run stops before its end: a failure it names (TrainingError) or a signal (StopFlag, Interrupted).
No TensorFlow: the training loop, the evaluation, a sweep's worker pool and run.py share these."""
import signal


class TrainingError(RuntimeError):
    """Training or its evaluation stopped on purpose (a non-finite loss or score, a missing checkpoint or run
    folder, failed sub-runs); the message names the step, checkpoint or folder."""


class Interrupted(RuntimeError):
    """Training was interrupted by a signal after a checkpoint was written."""

    def __init__(self, signum, checkpoint):
        super().__init__(f"interrupted by signal {signum}; checkpoint {checkpoint}")
        self.signum, self.checkpoint = signum, checkpoint


class StopFlag:
    """The one handler of SIGINT/SIGTERM while the block runs. A signal sets `signum`, which the owner checks
    where stopping is safe (the training loop after a checkpoint, the worker pool to pass it on); with
    raise_now (where there is nothing to save: between runs, loading data) it raises Interrupted at once.
    Blocks nest: the innermost handles the signal, and the outer one is back when it ends."""

    def __init__(self, raise_now=False):
        self.signum, self.raise_now = None, raise_now
        self._previous = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        self.signum = signum
        if self.raise_now:
            raise Interrupted(signum, None)
