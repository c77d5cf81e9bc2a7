"""Argument types of run.py's flags: each parses one value or says in one line why it cannot."""
import argparse
import math


def digit_or_all(text):
    if text == "all":
        return "all"
    if not text.isdigit() or not 0 <= int(text) <= 9:
        raise argparse.ArgumentTypeError(f"expected a digit 0-9 or 'all', got {text!r}")
    return int(text)


def bounded(kind, low=None, high=None, low_open=False):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {value}")
        return value
    return parse


def widths_list(text):
    values = [int(v) for v in text.split(",") if v.strip().isdigit()]
    if len(values) != len(text.split(",")) or not 1 <= len(values) <= 5 or min(values) < 1 or max(values) > 1024:
        raise argparse.ArgumentTypeError(f"expected 1-5 comma-separated channel counts in 1..1024 like 32,64,128, "
                                         f"got {text!r}")   # 5 halvings take 32x32 to 1x1
    return tuple(values)
