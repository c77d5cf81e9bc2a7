"""How a run stops early (source.stops): a signal inside a StopFlag block is recorded for its owner, or raised at
once with raise_now; blocks nest, the innermost handling the signal and the outer one back after it."""
import os
import signal

import pytest

from source.stops import Interrupted, StopFlag


def _send(signum):
    os.kill(os.getpid(), signum)   # delivered to this (main) thread before os.kill returns


def test_a_signal_is_recorded_for_the_owner_and_the_handlers_are_restored():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopFlag() as stop:
        assert stop.signum is None
        _send(signal.SIGTERM)
        assert stop.signum == signal.SIGTERM   # recorded, nothing raised: the loop stops where it is safe
        _send(signal.SIGINT)
        assert stop.signum == signal.SIGINT
    assert {s: signal.getsignal(s) for s in before} == before


def test_raise_now_raises_interrupted_with_the_signal_and_no_checkpoint():
    with pytest.raises(Interrupted) as caught:
        with StopFlag(raise_now=True):
            _send(signal.SIGINT)
    assert (caught.value.signum, caught.value.checkpoint) == (signal.SIGINT, None)
    assert "signal 2" in str(caught.value)


def test_blocks_nest_the_innermost_handles_and_the_outer_is_back_after():
    with pytest.raises(Interrupted):
        with StopFlag(raise_now=True) as outer:
            with StopFlag() as inner:
                _send(signal.SIGTERM)
            assert inner.signum == signal.SIGTERM and outer.signum is None
            _send(signal.SIGTERM)   # the outer block's handler again: raises at once
