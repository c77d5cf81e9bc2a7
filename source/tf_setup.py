"""Importing TensorFlow quietly: on a CPU machine its start-up lines (CUDA probing, oneDNN notices) read
like failures to a user who asked for nothing of the kind."""
import os
import warnings


def import_tensorflow(verbose=False):
    """Import TensorFlow; unless verbose, without its C++ start-up lines and Python deprecation warnings."""
    if verbose:
        import tensorflow as tf
        return tf
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)   # lines written before absl's logging starts bypass TF_CPP_MIN_LOG_LEVEL
    try:
        import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    tf.get_logger().setLevel("ERROR")
    return tf
