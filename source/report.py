"""report.md of a run: one page that reads well in any Markdown viewer, figures by relative path (a sweep's:
source.tools.sweep)."""
import os

from source import markdown
from source.metrics import THRESHOLD_STD, best_test_reading

FIGURES = [("box_plot", "Scores per class (normal classes green)"), ("roc_curve", "ROC curves of every score"),
           ("pr_curve", "Precision-recall curves"), ("score_histogram", "Score histogram with the threshold"),
           ("loss_curves", "Losses, k_t and b, validation score and reconstruction errors per epoch"),
           ("baselines", "ADAE beside the baselines"),
           ("grids/normal_as_normal", "Normal images judged normal"),
           ("grids/anomalous_as_normal", "Anomalous images judged normal (misses)"),
           ("grids/normal_as_anomalous", "Normal images judged anomalous (false alarms)"),
           ("grids/anomalous_as_anomalous", "Anomalous images judged anomalous")]


def run_report(summary):
    """A Summary's command, data, metrics of every method, threshold metrics and timings: TensorBoard's text,
    and report.md's with figures_section after it."""
    c, d, m, t = summary.config, summary.data, summary.metrics, summary.timings
    model, training = c.model, c.training
    out = [f"# {summary.name}\n", f"`{c.command}`\n",
           f"- data: {d['source'].get('path', d['source']['name'])} ({d['source']['reason']}); "
           f"--{d['protocol']} {d['digit']}, --split {d.get('split', 'official')}; normal digits {d['normal_digits']}",
           f"- images: {d['train_normal']:,} training and {d['valid_normal']:,} validation normals, "
           f"{d['dev_anomalous']} development anomalies; test {d['test']:,} ({d['test_anomalous']:,} anomalous)",
           f"- model: --arch {model.arch}, --objective {model.objective}, score {summary.anomaly_score}, "
           f"batch {training.batch}, lr {model.lr}, beta1 {model.beta1}, balance alpha {model.balance_alpha}, "
           + (f"{training.steps} steps" if training.steps is not None else f"{training.epoch} epochs")
           + f", seed {summary.seed}, {summary.precision['used']}\n",
           "## Test metrics\n",
           markdown.table(["method", "AUROC", "AUPRC"], [[name, f"{r['AUROC']:.4f}", f"{r['AUPRC']:.4f}"]
                                                        for name, r in summary.methods()]),
           "ADAE's other scores (test AUROC): "
           + ", ".join(f"{k} {v:.4f}" for k, v in m["AUROC_per_score"].items()) + "\n",
           f"At the threshold {m['threshold']:.6g} (mean + {THRESHOLD_STD:g} std of the validation normals' scores): "
           f"precision {m['precision']:.4f}, recall {m['recall']:.4f}, F1 {m['F1']:.4f} "
           f"(TP {m['TP']}, FP {m['FP']}, FN {m['FN']}, TN {m['TN']}); F1Max {m['F1Max']:.4f}.\n"]
    if summary.test_curve:
        best, step = best_test_reading(summary.test_curve, summary.anomaly_score)
        out.append(f"Test-split diagnostic (--test-curve; nothing reads it): the best test AUROC of "
                   f"{summary.anomaly_score} over training is {best:.4f} at step {step}, what a best-test-epoch reading "
                   f"would publish; the honest value above (the weights evaluated, chosen without the test split) "
                   f"is {m['AUROC']:.4f}.\n")
    final = summary.final_epoch or {}
    if summary.config.training.select == "best_look":
        best = summary.selected
        out.append("Evaluated weights (--select best_look): " + (
            f"the best look, epoch {best['epoch']}, step {best['step']}: development AUROC "
            f"{best['dev_auroc_halves']['a']:.4f} on half a (chosen on it), {best['dev_auroc_halves']['b']:.4f} on "
            f"half b (not used to choose).\n" if best else "the last step's (no epoch ended after the warm-up).\n"))
    if final:
        out.append(f"Last epoch: development AUROC {final.get('dev_auroc', float('nan')):.4f}, step {final['step']}, "
                   f"k_t {final['k_t']:.3f}, G's learning-rate share b {final['g_lr_share']:.2f}.\n")
        if "rec_g" in final:
            out.append(f"Reconstruction error of validation normals (L2, network frame): G {final['rec_g']:.3f}, "
                       f"D {final['rec_d']:.3f}, the mean normal image (template) {final['rec_template']:.3f}. "
                       "A network that reconstructs sits well below the template.\n")
    out += ["## Timings (seconds)\n", markdown.table(["stage", "value"], [[k, f"{v:.1f}"] for k, v in t.items()])]
    return "\n".join(out)


def figures_section(summary, run):
    """report.md's figures section: each figure of the run's results folder, one that failed or an empty grid
    said instead."""
    drawn = summary.figures
    empty, failed = drawn.get("empty_grids", {}), drawn.get("failed", {})
    out = ["## Figures\n"]
    for name, caption in FIGURES:
        grid = name.split("/")[-1]
        if name in failed:
            out.append(f"### {caption}\n\nNot drawn: the figure failed ({failed[name]}).\n")
        elif grid in empty:
            out.append(f"### {caption}\n\nNo test image falls in this category.\n")
        elif os.path.isfile(run.figure(name)):
            out.append(f"### {caption}\n\n![{caption}]({name}.png)\n")
    out += [f"Not drawn: {name} ({error})\n" for name, error in failed.items() if name not in dict(FIGURES)]
    return "\n".join(out)
