"""Figures and image grids written by the solver (matplotlib, Agg backend)."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402


def _save(fig, path):
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def save_image(array, path):
    """Write a 2-D array in [0, 1] as a grayscale PNG, atomically."""
    tmp = path + ".tmp.png"
    mpimg.imsave(tmp, np.clip(array, 0, 1), cmap="gray", vmin=0, vmax=1)
    os.replace(tmp, path)


def tile(rows, pad=1):
    """Tile a list of rows of (H, W) images into one array with a pad of 1s between cells."""
    h, w = rows[0][0].shape
    ncol = max(len(r) for r in rows)
    out = np.ones((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad), np.float32)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            top, left = pad + i * (h + pad), pad + j * (w + pad)
            out[top:top + h, left:left + w] = img
    return out


def restoration_grid(x, g_x, d_g_x):
    """One row per image: input | G(x) | D(G(x)) | |x - D(G(x))|."""
    return tile([[x[i, ..., 0], g_x[i, ..., 0], d_g_x[i, ..., 0], np.abs(x[i, ..., 0] - d_g_x[i, ..., 0])]
                 for i in range(len(x))])


def sample_grid(x, recon, columns=4):
    """Cells of (input, reconstruction, difference), `columns` cells per row."""
    cells = [[x[i, ..., 0], recon[i, ..., 0], np.abs(x[i, ..., 0] - recon[i, ..., 0])] for i in range(len(x))]
    if not cells:
        return np.ones((30, 30 * 3 * columns), np.float32)   # an empty category: a blank strip
    rows = [sum(cells[i:i + columns], []) for i in range(0, len(cells), columns)]
    return tile(rows)


def box_plot(scores, labels, threshold, path, class_names=None):
    """Scores per class with the decision threshold."""
    classes = sorted(np.unique(labels))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.boxplot([scores[labels == c] for c in classes], showfliers=True)
    ax.set_xticks(range(1, len(classes) + 1))
    ax.set_xticklabels([class_names[c] if class_names else str(c) for c in classes])
    ax.axhline(threshold, color="r", ls="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("class")
    ax.set_ylabel("anomaly score")
    ax.legend()
    _save(fig, path)


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
    ax.legend()
    _save(fig, path)


def loss_curves(history, path):
    """Per-epoch losses, their terms, k_t and the validation score."""
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for key in ("loss_g", "loss_d", "loss_g_rec", "loss_d_real", "loss_d_fake"):
        axes[0].plot(epochs, [h[key] for h in history], label=key)
    axes[0].set_title("losses")
    axes[1].plot(epochs, [h["k_t"] for h in history], label="k_t")
    axes[1].set_title("balance k_t")
    axes[2].plot(epochs, [h["valid_score"] for h in history], label="validation normals")
    axes[2].set_title("mean validation score")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    _save(fig, path)


def bar_chart(values, errors, path, title, ylabel="AUROC"):
    """Bars of {name: value} with optional {name: error}."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(max(5, len(names) * 1.1), 4))
    ax.bar(range(len(names)), [values[n] for n in names],
           yerr=[errors.get(n, 0) for n in names] if errors else None, capsize=3)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.axhline(0.5, color="k", ls="--", lw=1)
    ax.set_ylabel(ylabel)
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
