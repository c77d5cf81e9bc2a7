"""What runs print: Python's logging, one logger per module (logging.getLogger(__name__), all under
"source"), each message one line on standard output. run.py calls setup() once per process; --verbose
adds the debug lines. Without setup (a module used as a library, a test) info lines go nowhere."""
import contextlib
import logging
import sys


class StdoutHandler(logging.Handler):
    """Each message as one flushed line on the sys.stdout of the moment (a terminal, a worker's log file,
    pytest's capture)."""

    def emit(self, record):
        try:
            print(self.format(record), file=sys.stdout, flush=True)
        except Exception:   # logging's own rule: a failing handler never stops the program
            self.handleError(record)


def setup(verbose=False):
    """Route the "source" loggers' messages to standard output (once per process however often called)."""
    logger = logging.getLogger("source")
    for handler in [h for h in logger.handlers if isinstance(h, StdoutHandler)]:
        logger.removeHandler(handler)
    logger.addHandler(StdoutHandler())
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


@contextlib.contextmanager
def warnings_only(name):
    """Inside the block, logger `name` passes on warnings and errors only (ConvAE's training lines)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
