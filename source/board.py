"""TensorBoard records beyond the graph's own summaries: figures, the test PR curve, a text report, HParams.

Each function returns a serialized Summary protocol buffer, built without graph ops (the ADAE graph
is finalized), for `tf.compat.v1.summary.FileWriter.add_summary`.
"""
import numpy as np
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.pr_curve import summary as pr_summary
from tensorboard.plugins.text import summary as text_summary

PR_THRESHOLDS = 201


def writer(log_dir, graph=None):
    """The v1 FileWriter of a log folder (it refuses to open in eager mode, so it opens inside a fresh graph),
    writing `graph` to the events where given."""
    import tensorflow as tf
    with tf.Graph().as_default():
        return tf.compat.v1.summary.FileWriter(log_dir, graph=graph)


def image(tag, png_bytes, height, width):
    """An encoded PNG as an image summary."""
    img = summary_pb2.Summary.Image(encoded_image_string=png_bytes, height=height, width=width, colorspace=4)
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=img)]).SerializeToString()


def scalar(tag, value):
    """A scalar summary (HParams metrics are read from these)."""
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))]
                               ).SerializeToString()


def pr_curve(tag, anomalous, scores):
    """TensorBoard's PR curve of anomalous (positive) vs normal; scores are min-max scaled to [0, 1],
    which keeps their order and so the curve."""
    scores = np.asarray(scores, np.float64)
    span = scores.max() - scores.min()
    predictions = (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)
    return pr_summary.pb(tag, np.asarray(anomalous, bool), predictions.astype(np.float32),
                         num_thresholds=PR_THRESHOLDS).SerializeToString()


def text(tag, markdown):
    """A Markdown text summary."""
    return text_summary.pb(tag, markdown).SerializeToString()


TEST_AUROC, DEV_AUROC = "test/AUROC", "valid/dev_AUROC"   # the two AUROC tags, one meaning each
# --test-curve: the test AUROC along training, a diagnostic of the test split that nothing reads back
TEST_SPLIT_DIAGNOSTIC = "test_split_diagnostic_AUROC"
HPARAM_KEYS = ("arch", "objective", "anomaly_score", "protocol", "digit", "seed", "lr", "beta1", "batch",
               "steps", "epoch", "balance_alpha", "latent")
METRICS = ((TEST_AUROC, "test AUROC"), (DEV_AUROC, "development AUROC"))


def hparams(config, name):
    """One run's settings (a record.RunConfig of one digit) as HParams: the dashboard lists them beside the
    metrics."""
    values = dict(config.flat(), digit=config.data.digits[0])
    return hparams_summary.hparams_pb({k: _hparam_value(values[k]) for k in HPARAM_KEYS},
                                      trial_id=name).SerializeToString()


def hparams_config():
    """The HParams experiment of a sweep: which metrics to show for each sub-run."""
    metrics = [hparams_summary.Metric(tag, display_name=name) for tag, name in METRICS]
    return hparams_summary.hparams_config_pb([hparams_summary.HParam(k) for k in HPARAM_KEYS],
                                             metrics).SerializeToString()


def _hparam_value(value):
    if value is None:
        return "none"
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
