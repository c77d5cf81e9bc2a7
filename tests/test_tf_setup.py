"""Importing TensorFlow quietly (source.tf_setup): without verbose, none of its start-up lines or Python
deprecation warnings, and standard error given back afterwards; with verbose, TensorFlow as it comes."""
import logging
import os
import subprocess
import sys
import warnings

from source.tf_setup import import_tensorflow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_fresh_process_imports_tensorflow_without_a_line_on_stderr():
    """In a new interpreter with TensorFlow's own log level unset (its start-up notices on) and deprecation
    warnings raised as errors: nothing on stderr, the C++ log level at 3, TensorFlow's logger at ERROR, and a
    deprecation or future warning after the import ignored."""
    code = ("import os, warnings\n"
            "from source.tf_setup import import_tensorflow\n"
            "tf = import_tensorflow(False)\n"
            "warnings.warn('old', DeprecationWarning)\n"
            "warnings.warn('soon', FutureWarning)\n"
            "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], tf.get_logger().level, tf.constant(2).numpy())\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-W", "error::FutureWarning", "-c", code],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.split() == ["3", str(logging.ERROR), "2"]


def test_verbose_leaves_tensorflow_its_log_levels_and_the_warning_filters(monkeypatch):
    """TensorFlow itself, with its C++ log level, its logger's level and Python's warning filters as they were
    (taken after a plain import: importing TensorFlow adds filters of its own)."""
    import tensorflow as tf
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    filters, level = list(warnings.filters), tf.get_logger().level
    assert import_tensorflow(True) is tf
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1" and warnings.filters == filters
    assert tf.get_logger().level == level


def test_quiet_import_in_this_process_gives_standard_error_back(monkeypatch, capfd):
    """Standard error is silenced for the import only: a line written to it afterwards comes out."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    try:
        with warnings.catch_warnings():
            tf = import_tensorflow(False)
            assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3" and tf.get_logger().level == logging.ERROR
    finally:
        tf_logger.setLevel(level)
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"
