"""What runs print (source.console): setup() routes source's loggers to standard output, one line a message,
info and above (debug too with verbose), once however often it is called; warnings_only() quiets one logger
for a block and gives it back its level after."""
import logging

import pytest

from source import console


@pytest.fixture
def source_logger():
    """The "source" logger, given back with its handlers and level as they were."""
    logger = logging.getLogger("source")
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_setup_prints_info_and_above_one_line_each(source_logger, capsys):
    console.setup()
    log = logging.getLogger("source.some_module")
    log.debug("not shown")
    log.info("step %d of %d", 3, 10)
    log.warning("a warning")
    log.error("an error")
    out = capsys.readouterr()
    assert out.out == "step 3 of 10\na warning\nan error\n" and out.err == ""
    logging.getLogger("elsewhere").warning("another library's")   # only source's loggers are routed
    assert capsys.readouterr().out == ""


def test_setup_verbose_adds_debug_and_a_second_setup_adds_no_second_handler(source_logger, capsys):
    console.setup()
    console.setup(verbose=True)
    log = logging.getLogger("source.some_module")
    log.debug("a debug line")
    log.info("an info line")
    assert capsys.readouterr().out == "a debug line\nan info line\n"
    console.setup()
    log.debug("hidden again")
    log.info("once")
    assert capsys.readouterr().out == "once\n"
    assert sum(isinstance(h, console.StdoutHandler) for h in source_logger.handlers) == 1


def test_a_message_that_cannot_be_formatted_does_not_stop_the_program(source_logger, capsys, monkeypatch):
    """logging's rule: the handler reports its error on stderr and the program goes on (pytest's own handler,
    which raises instead, is kept out)."""
    monkeypatch.setattr(source_logger, "propagate", False)
    console.setup()
    log = logging.getLogger("source.some_module")
    log.info("%d images", "many")
    log.info("next line")
    out = capsys.readouterr()
    assert out.out == "next line\n" and "Logging error" in out.err


def test_warnings_only_quiets_info_in_the_block_and_restores_the_level(logged):
    log = logging.getLogger("source.solver_like")
    log.setLevel(logging.DEBUG)
    try:
        with console.warnings_only(log.name):
            log.info("epoch line")
            log.warning("a warning")
            assert log.level == logging.WARNING
        log.info("after")
        assert log.level == logging.DEBUG
        with pytest.raises(RuntimeError), console.warnings_only(log.name):
            raise RuntimeError("fails inside")
        assert log.level == logging.DEBUG   # given back when the block raises too
    finally:
        log.setLevel(logging.NOTSET)
    assert logged.lines == ["a warning", "after"]


def test_warnings_only_gives_back_an_unset_level(logged):
    """A logger that had no level of its own (it follows "source") has none again after the block."""
    log = logging.getLogger("source.unset_level")
    with console.warnings_only(log.name):
        log.info("hidden")
    assert log.level == logging.NOTSET
    log.info("shown")   # through "source", which the logged fixture sets to INFO
    assert logged.lines == ["shown"]
