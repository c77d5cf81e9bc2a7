"""Figures and image grids (matplotlib, Agg backend): a run's figures from its evaluation (draw_figures),
the training loop's restorations, a sweep's chart, the development curves."""
import io
import logging
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from source import board, files  # noqa: E402

logger = logging.getLogger(__name__)


def _save(fig, path):
    """Write a figure as PNG atomically; return the PNG bytes (TensorBoard shows the same picture)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    png = buffer.getvalue()
    files.write_bytes(png, path)
    return png


def png_size(png):
    """(height, width) of PNG bytes, read from the IHDR header."""
    return int.from_bytes(png[20:24], "big"), int.from_bytes(png[16:20], "big")


GAP = 2      # pixels between the tiles of an example grid


def example_grid(x, panels, captions, title, path):
    """One row per example: the input, then each (column title, images) panel; each row captioned
    (class, score). Images are (N, H, W, 1) in [0, 1]. The tiles are one mosaic image in one axes (one
    axes per tile cost about a second per figure). Returns the PNG bytes."""
    columns = [("input x", x)] + list(panels)
    rows = max(1, len(x))
    height, width = (x.shape[1], x.shape[2]) if x.ndim == 4 else (28, 28)
    mosaic = np.full((rows * (height + GAP) - GAP, len(columns) * (width + GAP) - GAP), 0.5)
    for j, (_, images) in enumerate(columns):
        for i in range(min(rows, len(images))):
            top, left = i * (height + GAP), j * (width + GAP)
            mosaic[top:top + height, left:left + width] = np.clip(images[i, ..., 0], 0, 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(columns) + 1.6, 1.2 * rows + 0.6))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    for j, (name, _) in enumerate(columns):
        ax.text(j * (width + GAP) + width / 2, -GAP, name, fontsize=9, ha="center", va="bottom")
    for i, caption in enumerate(captions[:rows]):
        ax.text(-2 * GAP, i * (height + GAP) + height / 2, caption, fontsize=8, ha="right", va="center")
    if not len(x):
        ax.text(0.5, 0.5, "no example", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10, pad=22)
    return _save(fig, path)


def box_plot(scores, labels, threshold, path, class_names=None, normal_classes=()):
    """Scores per class with the decision threshold; normal classes in green, counts under each box."""
    classes = sorted(np.unique(labels))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    parts = ax.boxplot([scores[labels == c] for c in classes], showfliers=True, patch_artist=True)
    for box, c in zip(parts["boxes"], classes):
        box.set_facecolor("#9fd89f" if c in normal_classes else "#f4b6b6")
    ax.set_xticks(range(1, len(classes) + 1))
    names = [class_names[c] if class_names else str(c) for c in classes]
    ax.set_xticklabels([f"{n}{' (normal)' if c in normal_classes else ''}\nn={int((labels == c).sum())}"
                        for n, c in zip(names, classes)], fontsize=8)
    ax.axhline(threshold, color="r", ls="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("class (green: normal, red: anomalous)")
    ax.set_ylabel("anomaly score")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def roc_curve(anomalous, curves, path):
    """ROC curves of {name: scores}, AUROC in the legend, dashed chance line."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in curves.items():
        fpr, tpr, _ = skm.roc_curve(anomalous, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {skm.roc_auc_score(anomalous, scores):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def pr_curve(anomalous, curves, path):
    """Precision-recall curves of {name: scores}, AUPRC in the legend."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in curves.items():
        precision, recall, _ = skm.precision_recall_curve(anomalous, scores)
        ax.plot(recall, precision, label=f"{name} (AUPRC {skm.average_precision_score(anomalous, scores):.3f})")
    ax.axhline(np.mean(anomalous), color="k", ls="--", lw=1, label="chance")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.legend(loc="lower left", fontsize=8)
    _save(fig, path)


def score_histogram(scores, anomalous, threshold, path):
    """Histograms of normal and anomalous test scores with the threshold."""
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(scores.min(), scores.max(), 50)
    ax.hist(scores[anomalous == 0], bins, alpha=0.6, density=True, label="normal")
    ax.hist(scores[anomalous == 1], bins, alpha=0.6, density=True, label="anomalous")
    ax.axvline(threshold, color="r", ls="--", label="threshold")
    ax.set_xlabel("anomaly score")
    ax.set_ylabel("density")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, path)


def loss_curves(history, path):
    """Per-epoch losses, their terms, BEGAN's k_t and G's learning-rate share b, the validation score and
    G's and D's reconstruction error of
    validation normals beside the mean normal image's (a network that learns ends well below it)."""
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for key in ("loss_g", "loss_d", "loss_g_rec", "loss_d_real", "loss_d_fake"):
        axes[0].plot(epochs, [h[key] for h in history], label=key)
    axes[0].set_title("losses")
    axes[1].plot(epochs, [h["k_t"] for h in history], label="k_t (weight of D's fake term)")
    axes[1].plot(epochs, [h["g_lr_share"] for h in history], label="b (G's learning-rate share)")
    axes[1].set_title("equilibrium k_t and balancing b")
    axes[2].plot(epochs, [h["valid_score"] for h in history], label="validation normals")
    axes[2].set_title("mean validation score")
    for key, label in (("rec_g", "G: ||x - G(x)||"), ("rec_d", "D: ||x - D(x)||"),
                       ("rec_template", "template: ||x - mean image||")):
        if all(key in h for h in history):
            axes[3].plot(epochs, [h[key] for h in history], "--" if key == "rec_template" else "-", label=label)
    axes[3].set_title("reconstruction error, validation normals")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    _save(fig, path)


def bar_chart(values, path, title):
    """Bars of {name: AUROC}, the chance level dashed."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(max(5, len(names) * 1.1), 4))
    ax.bar(range(len(names)), [values[n] for n in names])
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.axhline(0.5, color="k", ls="--", lw=1)
    ax.set_ylabel("AUROC")
    ax.set_title(title)
    _save(fig, path)


def sweep_chart(table, path, title):
    """Grouped bars: AUROC mean per class for each method; table[method][class] = (mean, std)."""
    methods = list(table)
    classes = sorted({c for m in methods for c in table[m]})
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(8, len(classes) * 1.2), 4))
    for i, m in enumerate(methods):
        ax.bar(np.arange(len(classes)) + i * width, [table[m].get(c, (np.nan, 0))[0] for c in classes], width,
               yerr=[table[m].get(c, (0, 0))[1] for c in classes], capsize=2, label=m)
    ax.set_xticks(np.arange(len(classes)) + width * (len(methods) - 1) / 2)
    ax.set_xticklabels([str(c) for c in classes])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("AUROC")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=3)
    _save(fig, path)


def auroc_curves(panels, path, score="x_dgx", columns=None):
    """One panel per case (in rows of `columns`, default all in one row): development AUROC (honest, what
    choices read) and test AUROC (the marked diagnostic) of `score` against the training step, log scale,
    with the end value and the best test value marked. panels: [(title, Summary)]."""
    columns = columns or len(panels)
    rows = int(np.ceil(len(panels) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.8 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    for ax, (title, summary) in zip(axes.flat, panels):
        dev = [(p["step"], p["dev_auroc_per_score"][score]) for p in summary.dev_curve]
        test = [(p["step"], p["test_auroc_per_score"][score]) for p in summary.test_curve]
        ax.plot(*zip(*dev), "o-", ms=3, label="development (validation normals vs 200 held-out anomalies)")
        if test:
            ax.plot(*zip(*test), "s--", ms=3, label="test (diagnostic, read by nothing)")
            best = max(test, key=lambda p: p[1])
            ax.annotate(f"best test {best[1]:.3f}\n(step {best[0]})", best, textcoords="offset points",
                        xytext=(6, -22), fontsize=8)
        end = summary.metrics["AUROC_per_score"][score]
        ax.axhline(end, color="gray", lw=0.8, ls=":")
        ax.text(1.0, end, f"end {end:.3f} ", fontsize=8, va="bottom", ha="right", color="gray",
                transform=ax.get_yaxis_transform())
        ax.set_xscale("log")
        ax.set_ylim(0, 1)
        ax.set_xlabel("training iteration")
        ax.set_ylabel(f"AUROC ({score})")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), fontsize=8, loc="lower center", ncol=2,
               bbox_to_anchor=(0.5, -0.08 / rows))
    fig.tight_layout()
    return _save(fig, path)


def draw_figures(data, run, scored, panels_of, step, history=None, class_names=None, bars=None, bars_title=""):
    """Every figure of a run from its evaluation (scored: evaluation.evaluate's), each on its own: one that
    fails is named on one line and the others are still drawn. panels_of(images): the model's reconstruction
    panels of those images; step: the TensorBoard step of the figures. Sample grids of an empty category are
    stated, not drawn. Returns {"failed": {figure: error}, "empty_grids": {grid: title}} for report.md and
    summary.json."""
    name, test, threshold = scored["anomaly_score"], scored["test"], scored["threshold"]
    score, anomalous = test[name], data.anomalous_test
    writer = board.writer(run.log)
    curves = {f"ADAE {k}" if k == name else k: v for k, v in test.items()}
    jobs = [("box_plot", lambda: box_plot(score, data.y_test, threshold, run.figure("box_plot"), class_names,
                                          normal_classes=data.normal_digits)),
            ("roc_curve", lambda: roc_curve(anomalous, curves, run.figure("roc_curve"))),
            ("pr_curve", lambda: pr_curve(anomalous, curves, run.figure("pr_curve"))),
            ("score_histogram", lambda: score_histogram(score, anomalous, threshold, run.figure("score_histogram"))),
            ("test/pr_curve", lambda: writer.add_summary(board.pr_curve("test/pr_curve", anomalous, score), step))]
    if history:
        jobs.append(("loss_curves", lambda: loss_curves(history, run.figure("loss_curves"))))
    if bars:
        jobs.append(("baselines", lambda: bar_chart(bars, run.figure("baselines"), bars_title)))
    os.makedirs(run.grid_dir, exist_ok=True)
    empty = {}
    for grid_name, title, idx in scored["grids"]:
        if not len(idx):
            empty[grid_name] = title
            writer.add_summary(board.text(f"test_grids/{grid_name}", f"No test image: no {title}."), step)
            continue

        def grid(grid_name=grid_name, title=title, idx=idx):
            png = example_grid(
                data.x_test[idx], panels_of(data.x_test[idx]),
                [f"{_class_name(data.y_test[i], class_names)}\nscore {score[i]:.3g}" for i in idx],
                f"{title} (threshold {threshold:.3g}, score {name})", run.figure(f"grids/{grid_name}"))
            writer.add_summary(board.image(f"test_grids/{grid_name}", png, *png_size(png)), step)
        jobs.append((f"grids/{grid_name}", grid))
    failed = {}
    for figure, make in jobs:
        draw(figure, make, failed)
    writer.close()
    return {"failed": failed, "empty_grids": empty}


def draw(figure, make, failed):
    """Draw one figure (make()); one that fails is named on one line and in `failed`, and never costs the run."""
    try:
        make()
    except Exception as err:
        failed[figure] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        logger.warning(f"[figures] {figure} failed: {failed[figure]}")


def _class_name(label, class_names):
    return class_names[label] if class_names else str(label)
