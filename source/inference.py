"""Score new images with a trained run: read PNG/JPEG files, folders of them, or .npy/.npz arrays."""
import logging
import os

import numpy as np

from source import datamanager, evaluation, metrics, plots
from source.datamanager import DataError

logger = logging.getLogger(__name__)

SIZE = (28, 28)


def _to_gray_28(img, name, notes):
    """A PIL image as a (28, 28) float array in the image's own 0..255 range."""
    from PIL import Image
    if img.mode not in ("L", "F"):
        notes.append(f"{name}: {img.mode} converted to grayscale")
        img = img.convert("L")
    if img.size != SIZE:
        notes.append(f"{name}: resized from {img.size[0]}x{img.size[1]} to 28x28")
        img = img.resize(SIZE, Image.BILINEAR)
    return np.asarray(img, np.float32)


def read_image_files(paths):
    """Read image files; return names, (N, 28, 28) pixels in 0..255, notes and skipped files with reasons."""
    from PIL import Image, UnidentifiedImageError
    names, images, notes, skipped = [], [], [], []
    for path in paths:
        name = os.path.basename(path)
        try:
            with Image.open(path) as img:
                images.append(_to_gray_28(img, name, notes))
            names.append(name)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            skipped.append(f"{name}: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
    return names, np.asarray(images, np.float32).reshape(-1, 28, 28), notes, skipped


def read_array(path):
    """Read an .npy or .npz array of images; return names (indices), (N, 28, 28) pixels and notes."""
    from PIL import Image
    try:
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as f:
                keys = [k for k in ("x", "images", "x_test") if k in f.files] or f.files
                if not keys:
                    raise DataError(f"{path} holds no arrays")
                x = f[keys[0]]
        else:
            x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    x = np.asarray(x, np.float32)
    x = x[None] if x.ndim == 2 and x.shape[1] != 784 else datamanager.as_image_stack(x)   # one 2-D image
    if x.ndim != 3 or len(x) == 0:
        raise DataError(f"{path} has shape {x.shape}; expected images (N, H, W), (N, H, W, C) or (N, 784)")
    if not np.isfinite(x).all():
        raise DataError(f"{path} holds non-finite pixels")
    notes = []
    if x.shape[1:] != SIZE:
        notes.append(f"{os.path.basename(path)}: resized from {x.shape[2]}x{x.shape[1]} to 28x28")
        x = np.stack([np.asarray(Image.fromarray(img, "F").resize(SIZE, Image.BILINEAR)) for img in x])
    return [str(i) for i in range(len(x))], x, notes


def is_array_path(path):
    """True for an .npy/.npz file, which is read as an array rather than as an image."""
    return os.path.isfile(path) and path.endswith((".npy", ".npz"))


def read_inputs(path):
    """Images to score from a file, a folder or an array; refuse when nothing is readable."""
    if not os.path.exists(path):
        raise DataError(f"--score-images {path} does not exist")
    if is_array_path(path):
        names, x, notes = read_array(path)
        return names, x, notes, []
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if os.path.isfile(os.path.join(path, f)))
        if not files:
            raise DataError(f"folder {path} holds no files")
    else:
        files = [path]
    names, x, notes, skipped = read_image_files(files)
    if not names:
        raise DataError(f"no readable image in {path} ({len(skipped)} files skipped: {skipped[0]})")
    return names, x, notes, skipped


def percentile_of(scores, reference):
    """Percent of reference scores (validation normals) at or below each score."""
    reference = np.sort(np.asarray(reference, np.float64))
    return 100.0 * np.searchsorted(reference, scores, side="right") / len(reference)


def score_new_images(run, path):
    """--score-images: score the images at path with run's checkpoint, threshold and validation scores; write
    score_<input>/scores.csv and most_anomalous.png into run's results folder. Bad input: DataError."""
    from source.neuralnet import ADAE
    summary = run.read_summary()
    names, pixels, notes, skipped = read_inputs(path)
    is_array = is_array_path(path)
    # files are 8-bit; arrays are scaled the way the run scaled its data
    x = datamanager.scale(pixels, summary.config.data.datnorm if is_array else True)
    for line in notes:
        logger.info(f"[score] note: {line}")
    for line in skipped:
        logger.info(f"[score] skipped: {line}")
    model = ADAE(summary.config.model)   # the model config alone rebuilds the graph; weights from the checkpoint
    # the weights the run was evaluated with: --select best_look's copy where it chose one
    folder = run.best_dir if summary.selected else run.log
    found, checkpoint = model.load(folder)
    if not found:
        model.close()
        raise DataError(f"run {run.name!r} has no checkpoint in {folder}")
    score = model.run_scores(x, names=(model.anomaly_score,))[model.anomaly_score]
    threshold = summary.threshold
    verdicts = metrics.verdicts(score, threshold)
    stem = os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or "input"
    out_dir = run.new_score_dir(stem)
    run.write_new_scores(out_dir, names, score, percentile_of(score, run.read_valid_scores()), verdicts,
                         key="index" if is_array else "file")
    top = np.argsort(-score, kind="stable")[:evaluation.N_GRID]
    plots.example_grid(x[top], model.panels(x[top]), [f"{names[i]}\nscore {score[i]:.3g}" for i in top],
                       f"most anomalous of {len(score)} (threshold {threshold:.3g})",
                       os.path.join(out_dir, "most_anomalous.png"))
    model.close()
    logger.info(f"[score] {len(score)} images scored with {checkpoint}; {int(verdicts.sum())} above the threshold "
        f"{threshold:.4f}")
    logger.info(f"[score] results: {out_dir}")
    return 0
