"""What TensorBoard shows of a real run (source.board, the solver's summaries): the event file's graph,
scalars and images, and `tensorboard --logdir` serving them over HTTP."""
import glob
import json
import os
import subprocess
import sys

from tests.conftest import GRIDS


def test_event_file_has_graph_scalars_and_images(e2e):
    """TensorBoard sees the graph, both losses and their terms, k_t, validation scores and restorations."""
    import tensorflow as tf
    tmp, _, _ = e2e
    tags, has_graph = set(), False
    for path in glob.glob(str(tmp / "Checkpoint" / "embedded_normal1" / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            has_graph |= bool(event.graph_def)
            tags |= {v.tag for v in event.summary.value}
    assert has_graph
    for tag in ("loss/loss_g", "loss/loss_d", "loss_terms/g_rec_x_gx", "loss_terms/d_real_x_dx",
                "loss_terms/d_fake_gx_dgx", "health/k_t", "health/g_lr_share_b", "health/d_fake_over_real",
                "valid/score_mean", "valid/scores", "restoration/validation_normals",
                "test/AUROC", "valid/dev_AUROC", "test_grids/normal_as_normal",
                "reconstruction/rec_g", "reconstruction/rec_d", "reconstruction/rec_template", "dev_auroc/x_dgx",
                "_hparams_/session_start_info"):
        assert tag in tags, tag
    for plugin_tag in ("test/pr_curve/", "report/summary/"):   # plugins append their own suffix
        assert any(t.startswith(plugin_tag) for t in tags), plugin_tag
    for grid in GRIDS:   # an image, or a text saying the category is empty
        plugin_tag = f"test_grids/{grid}"
        assert any(t.startswith(plugin_tag) for t in tags), plugin_tag
    assert glob.glob(str(tmp / "Checkpoint" / "embedded_normal1" / "model.ckpt-*.index"))


def _free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_tensorboard_serves_the_runs_scalars_and_images(e2e):
    """`tensorboard --logdir` on a tiny run's logs, bound to 127.0.0.1: the scalar, image, PR-curve and
    text tags come back over HTTP; the server is stopped afterwards."""
    import shutil
    import time
    import urllib.request
    tmp, _, _ = e2e
    binary = shutil.which("tensorboard") or os.path.join(os.path.dirname(sys.executable), "tensorboard")
    assert os.path.exists(binary), "requirements.txt installs tensorflow, whose tensorboard command is missing"
    port = _free_port()
    server = subprocess.Popen([binary, "--logdir", str(tmp / "Checkpoint"), "--host", "127.0.0.1", "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/data/plugin"
    try:
        deadline, tags = time.time() + 600, None   # a guard against a hang, not a speed limit
        while time.time() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/scalars/tags", timeout=5) as response:
                    tags = json.loads(response.read())
                if "embedded_normal1" in tags:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert server.poll() is None and tags, \
            "TensorBoard did not serve the run: " + (server.stderr.read()[-300:] if server.poll() is not None
                                                     else "timeout")
        assert {"loss/loss_g", "loss/loss_d", "health/k_t", "valid/dev_AUROC"} <= set(tags["embedded_normal1"])
        with urllib.request.urlopen(f"{base}/images/tags", timeout=10) as response:
            images = json.loads(response.read())["embedded_normal1"]
        assert "restoration/validation_normals" in images and "test_grids/normal_as_normal" in images
        for plugin, tag in (("pr_curves", "test/pr_curve/"), ("text", "report/summary/")):
            with urllib.request.urlopen(f"{base}/{plugin}/tags", timeout=10) as response:
                assert any(t.startswith(tag) for t in json.loads(response.read())["embedded_normal1"]), plugin
    finally:
        server.terminate()
        server.wait(timeout=30)
