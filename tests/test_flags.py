"""run.py's flags (source.flags): the value types, the checks between flags, and what a parse gives; every
mistake is a UsageError of one line (run.py prints it and exits 2: tests/test_run.py)."""
import argparse
import math

import pytest

from source.datamanager import DataConfig
from source.flags import UsageError, bounded, build_parser, digit_or_all, parse_args, widths_list


@pytest.mark.parametrize("argv, phrase", [
    (["--normal", "1", "--anomaly", "2"], "choose one protocol: --normal K or --anomaly K, not both"),
    (["--part-of", "s", "--seeds", "2"], "--part-of runs one digit and one seed"),
    (["--part-of", "s", "--anomaly", "all"], "--part-of runs one digit and one seed"),
    (["--part-of", "s", "--normal", "3", "--name", "x"], "--part-of names its sub-run itself"),
    (["--part-of", "s", "--normal", "3", "--test-only"], "--part-of names its sub-run itself"),
    (["--name", "a/b"], "--name must be a plain folder name, got 'a/b'"),
    (["--name", ".hidden"], "--name must be a plain folder name"),
    (["--part-of", ""], "--part-of must be a plain folder name, got ''"),
    (["--test-only"], "need --name of an earlier run"),
    (["--name", "x", "--resume", "--test-only"], "use --resume or --test-only, not both"),
    (["--name", "x", "--test-only", "--seeds", "3"], "--test-only takes one run, not a sweep"),
    (["--name", "x", "--test-only", "--normal", "all"], "--test-only takes one run, not a sweep"),
    (["--data", "/no/such/mnist.npz"], "--data /no/such/mnist.npz does not exist"),
    (["--batch", "0"], "argument --batch: must be >= 1, got 0"),
    (["--seeds", "101"], "argument --seeds: must be <= 100, got 101"),
    (["--gamma", "0"], "argument --gamma: must be > 0, got 0.0"),
    (["--normal", "10"], "argument --normal: expected a digit 0-9 or 'all', got '10'"),
    (["--widths", "32,,64"], "argument --widths: expected 1-5 comma-separated channel counts"),
    (["--precision", "fp16"], "argument --precision: invalid choice: 'fp16'"),
    (["--select", "best"], "argument --select: invalid choice: 'best'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag")])
def test_mistakes_are_one_usage_error(argv, phrase):
    """Each mistake raises UsageError (never SystemExit) whose one line names what to fix."""
    with pytest.raises(UsageError) as err:
        parse_args(argv)
    assert phrase in str(err.value) and "\n" not in str(err.value)


def test_protocol_and_digits():
    """No digit flag: the default protocol and digit; --normal all: digits 0-9; --anomaly K: that digit."""
    args = parse_args([])
    assert (args.protocol, args.digits) == ("normal", DataConfig.digits)
    args = parse_args(["--normal", "all"])
    assert (args.protocol, args.digits) == ("normal", tuple(range(10)))
    args = parse_args(["--anomaly", "0"])
    assert (args.protocol, args.digits, args.normal) == ("anomaly", (0,), None)


def test_values_and_what_is_left_to_the_configs():
    """Given flags parse to their types (aliases included); a flag not given is None, so the config's default
    (or the architecture's recipe) decides; a job-array task of one digit and seed is accepted."""
    args = parse_args(["--balance", "2.5", "--widths", "8,16", "--latent", "4", "--data", "embedded", "--no-datnorm",
                       "--part-of", "sweep", "--anomaly", "3", "--seed", "2", "--resume"])
    assert (args.balance_alpha, args.widths, args.latent, args.source, args.datnorm) == (2.5, (8, 16), 4, "embedded",
                                                                                         False)
    assert (args.part_of, args.digits, args.seed, args.resume) == ("sweep", (3,), 2, True)
    args = parse_args([])
    assert args.lr is None and args.batch is None and args.epoch is None and args.baselines is None
    assert args.select is None and parse_args(["--select", "best_look"]).select == "best_look"
    assert args.source == DataConfig.source and args.logdir == "Checkpoint" and args.results == "results"


def test_help_shows_each_default_from_where_it_lives():
    """--help appends the defaults: a config field's, and the paper recipe's for the settings marked (*)."""
    helps = {a.option_strings[0]: a.help for a in build_parser()._actions if a.option_strings}
    assert helps["--dataset"].endswith(f"(default {DataConfig.dataset})")
    assert helps["--batch"].endswith("(default 64 with --arch paper)")
    assert "(default" not in helps["--records"] and "(default" not in helps["--resume"]


def test_bounded_limits():
    """bounded(kind, low, high, low_open): the kind's value within [low, high] ((low, high] when low_open);
    text that is not the kind, and for floats nan and inf, are refused with what was expected."""
    batch, rate, bias = bounded(int, 1), bounded(float, 0, 1, low_open=True), bounded(float, -10, 10)
    assert batch("1") == 1 and batch("100000") == 100000 and rate("1") == 1.0 and rate("1e-9") == 1e-9
    assert bias("-10") == -10.0 and bias("10") == 10.0
    for parse, text, message in ((batch, "0", "must be >= 1, got 0"), (batch, "2.5", "expected int, got '2.5'"),
                                 (rate, "0", "must be > 0, got 0.0"), (rate, "1.5", "must be <= 1, got 1.5"),
                                 (bias, "-11", "must be >= -10, got -11.0"), (rate, "nan", "expected a finite number"),
                                 (bias, "inf", "expected a finite number"), (rate, "fast", "expected float")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(text)
    assert math.isclose(bounded(float)("-1e300"), -1e300)   # no bound: any finite number


def test_digit_or_all():
    assert digit_or_all("all") == "all" and digit_or_all("0") == 0 and digit_or_all("9") == 9
    for text in ("10", "-1", "x", "ALL", "", " 3"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a digit 0-9 or 'all'"):
            digit_or_all(text)


def test_widths_list():
    """1-5 channel counts in 1..1024, comma-separated (5 halvings take 32x32 to 1x1)."""
    assert widths_list("32,64,128") == (32, 64, 128) and widths_list("8") == (8,)
    assert widths_list("1,1024") == (1, 1024) and widths_list("1,2,3,4,5") == (1, 2, 3, 4, 5)
    for text in ("", "32,x", "32,,64", "0,8", "8,2000", "1,2,3,4,5,6", "-8", "8.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected 1-5 comma-separated channel counts"):
            widths_list(text)
