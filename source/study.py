"""The recipe study: ADAE's G/D balance chosen on the development AUROC, never on the test split.

    python -m source.study run --data PATH [--steps 1000] [--stage NAME] [--case NAME] [--root study]
    python -m source.study table [--root study] [--readme README.md]   # docs/study.md's table; README blocks

Each (case, recipe, seed) is one ordinary `run.py` run in its own process, named study_<case>_<recipe> for
seed 0 and study_<case>_<recipe>_seed<K> for seed K, so a stopped study resumes by running only what has no
summary.json yet; two study processes on different --case share the cores. The table reads each run's
development curve (validation normals against 200 train-split anomalies, measured at log-spaced steps)
from summary.json; test numbers are never read here.
"""
import argparse
import os
import subprocess
import sys

import numpy as np

from source.config import SCORE_NAMES
from source.rundir import RunDir
from source import tables
from source.files import write_text
from source.tables import cell

# recipe name -> run.py flags, every setting of the balance spelled out so that a change of run.py's defaults
# cannot change what a name means (batch 64 and beta1 0.5, the paper's, throughout)
PAPER = ["--objective", "paper", "--init", "he", "--latent", "32"]
EQ = ["--objective", "equilibrium", "--gamma", "0.5", "--lambda-k", "0.001", "--init", "he", "--latent", "32"]
EQ_G1 = ["--objective", "equilibrium", "--gamma", "1", "--lambda-k", "0.01", "--latent", "32"]
RECIPES = {
    "paper_lr1e-5": PAPER + ["--lr", "1e-5"],
    "paper_lr1e-4": PAPER + ["--lr", "1e-4"],
    "paper_lr2e-4": PAPER + ["--lr", "2e-4"],
    "paper_lr2e-4_dcgan": PAPER + ["--lr", "2e-4", "--init", "dcgan"],
    "balance10_lr2e-4": PAPER + ["--lr", "2e-4", "--balance-alpha", "10"],
    "eq_lr1e-4": EQ + ["--lr", "1e-4"],
    "eq_lr2e-4": EQ + ["--lr", "2e-4"],
    "eq_g1_lr1e-5": EQ_G1 + ["--lr", "1e-5", "--init", "he"],
    "eq_g1_lr1e-4": EQ_G1 + ["--lr", "1e-4", "--init", "he"],
    "eq_g1_lr2e-4": EQ_G1 + ["--lr", "2e-4", "--init", "he"],
    "eq_g1_lr2e-4_dcgan": EQ_G1 + ["--lr", "2e-4", "--init", "dcgan"],
    "autoencoder_lr2e-4": ["--objective", "autoencoder", "--lr", "2e-4", "--init", "he", "--latent", "32"],
    # second round, after the first: the best recipe's bottleneck, learning rate and budget
    "eq_g1_lr2e-4_dcgan_latent16": EQ_G1 + ["--lr", "2e-4", "--init", "dcgan", "--latent", "16"],
    "eq_g1_lr2e-4_dcgan_latent8": EQ_G1 + ["--lr", "2e-4", "--init", "dcgan", "--latent", "8"],
    "eq_g1_lr5e-4_dcgan": EQ_G1 + ["--lr", "5e-4", "--init", "dcgan"],
    "eq_g1_lr2e-4_dcgan_4k": EQ_G1 + ["--lr", "2e-4", "--init", "dcgan", "--steps", "4000"],
    # third round: the chosen recipe with slower batch-norm moving averages (the inference path's statistics)
    "eq_g1_lr2e-4_dcgan_latent8_bn99": EQ_G1 + ["--lr", "2e-4", "--init", "dcgan", "--latent", "8",
                                                "--bn-momentum", "0.99"],
    # fourth round (two seeds each, the paper's split for its protocol): smaller codes, and scoring with an
    # exponential moving average of the weights (each run also records its trained weights' curve)
    **{f"default_latent{k}_ema": EQ_G1 + ["--lr", "2e-4", "--init", "dcgan", "--latent", str(k), "--ema", "0.999"]
       for k in (8, 4, 2)},
    # fifth round, the budget study: the default recipe with its moving average trained 8,000 iterations (the
    # AVX2-only CPU's affordable budget; 16,000 on faster kinds), every epoch's checkpoint kept for rescoring;
    # its development curve gives every shorter budget of the same recipe on the way
    "default_ema_8k": EQ_G1 + ["--lr", "2e-4", "--init", "dcgan", "--latent", "8", "--ema", "0.999",
                               "--steps", "8000", "--keep-checkpoints", "100"],
    "default_ema_cosine_8k": EQ_G1 + ["--lr", "2e-4", "--init", "dcgan", "--latent", "8", "--ema", "0.999",
                                      "--steps", "8000", "--keep-checkpoints", "100", "--lr-schedule", "cosine"],
}
CASES = {"normal8": ["--normal", "8"], "anomaly1": ["--anomaly", "1"], "anomaly2": ["--anomaly", "2"],
         "anomaly9": ["--anomaly", "9"],
         **{f"anomaly{k}_paper": ["--anomaly", str(k), "--split", "paper"] for k in (1, 2, 7, 9)}}
# which recipes each stage runs on which cases: the one-class digit first, then the paper protocol's three
# digits with the first round's best and the literal losses; the second round on the one-class digit
STAGES = {
    "one_class": (["normal8"], list(RECIPES)[:12]),
    "paper_protocol": (["anomaly2", "anomaly9", "anomaly1"],
                       ["eq_g1_lr2e-4_dcgan_latent8", "eq_g1_lr2e-4_dcgan", "paper_lr2e-4", "eq_lr2e-4"]),
    "explore": (["normal8"], ["eq_g1_lr2e-4_dcgan_latent16", "eq_g1_lr2e-4_dcgan_latent8", "eq_g1_lr5e-4_dcgan",
                              "eq_g1_lr2e-4_dcgan_4k"]),
    "batch_norm": (["normal8", "anomaly2"], ["eq_g1_lr2e-4_dcgan_latent8_bn99"]),
    "code_ema": (["anomaly1_paper", "normal8", "anomaly2_paper", "anomaly9_paper"],
                 ["default_latent8_ema", "default_latent4_ema", "default_latent2_ema"], 2),
    "budget": (["anomaly1_paper", "anomaly7_paper", "anomaly2_paper", "anomaly9_paper", "normal8"],
               ["default_ema_8k", "default_ema_cosine_8k"], 2),
}


def stage_plan(stage):
    """(cases, recipes, seeds) of a stage: one seed where the stage names none."""
    cases, recipes, *seeds = STAGES[stage]
    return cases, recipes, (seeds or [1])[0]


def run_name(case, recipe, seed=0):
    return f"study_{case}_{recipe}" + (f"_seed{seed}" if seed else "")


def study_run(root, name):
    """The folders of one study run under root."""
    return RunDir(os.path.join(root, "Checkpoint"), os.path.join(root, "results"), name)


def run_study(data, steps, stage, root, threads, only_cases=None, only_recipes=None, only_seeds=None):
    """Run every (case, recipe, seed) of a stage that has no summary.json under root yet (only_cases,
    only_recipes, only_seeds: of those), case by case."""
    cases, recipes, seeds = stage_plan(stage)
    for case in (c for c in cases if not only_cases or c in only_cases):
        for recipe in (r for r in recipes if not only_recipes or r in only_recipes):
            for seed in (s for s in range(seeds) if not only_seeds or s in only_seeds):
                name = run_name(case, recipe, seed)
                run = study_run(root, name)
                if run.is_finished():
                    print(f"[study] {name}: done earlier", flush=True)
                    continue
                cmd = [sys.executable, "run.py", "--data", data, "--steps", str(steps), "--threads", str(threads),
                       "--results", os.path.dirname(run.results), "--logdir", os.path.dirname(run.log),
                       "--name", name, "--seed", str(seed), *CASES[case], *RECIPES[recipe]]
                print(f"[study] {name}: {' '.join(cmd[1:])}", flush=True)
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode:
                    print(f"[study] {name}: failed ({proc.stderr.strip().splitlines()[-1:]})", flush=True)


def finished_seeds(root, case, recipe):
    """The development curves of a (case, recipe)'s finished runs, one per seed, seed 0 first."""
    curves = []
    for seed in range(100):
        run = study_run(root, run_name(case, recipe, seed))
        if not run.is_finished():
            break
        curve = run.read_summary().dev_curve
        if curve:
            curves.append(curve)
    return curves


def table(root):
    """Markdown: one row per (case, recipe) with finished runs: each score's development AUROC at the last
    step (mean ± std over seeds), the paper score's best along the curve (mean over seeds), the trained
    weights' paper score at the end where the model scores with their moving average, G/D/template
    reconstruction error and k_t at the end."""
    found = {(case, recipe): finished_seeds(root, case, recipe) for case in CASES for recipe in RECIPES}
    names = [s for s in SCORE_NAMES   # the scores every study run measured (a run older than a score lacks it)
             if all(s in c[-1]["dev_auroc_per_score"] for curves in found.values() for c in curves)]
    lines = ["| case | recipe | seeds | steps | " + " | ".join(f"{s} end" for s in names)
             + " | x_dgx best | x_dgx end, trained weights | rec G / D / template | k_t |",
             "|---" * (len(names) + 8) + "|"]
    for (case, recipe), curves in found.items():
        if not curves:
            continue
        last = [c[-1] for c in curves]
        cells = [cell([p["dev_auroc_per_score"][s] for p in last]) for s in names]
        cells.append(f"{np.mean([max(p['dev_auroc_per_score']['x_dgx'] for p in c) for c in curves]):.3f}")
        trained = [p["dev_auroc_trained_per_score"]["x_dgx"] for p in last if "dev_auroc_trained_per_score" in p]
        cells.append(cell(trained) if trained else "")
        mean = {k: np.mean([p[k] for p in last]) for k in ("rec_g", "rec_d", "rec_template", "k_t")}
        lines.append(f"| {case} | {recipe} | {len(curves)} | {last[0]['step']} | " + " | ".join(cells)
                     + f" | {mean['rec_g']:.2f} / {mean['rec_d']:.2f} / {mean['rec_template']:.2f}"
                     + f" | {mean['k_t']:.2f} |")
    return "\n".join(lines) + "\n"


def stage_table(root, stage):
    """Markdown of one stage for the README: per case and recipe, the seeds, the paper score's development
    AUROC at the end (mean ± std) with the scoring weights and with the trained ones, D's own score, and G's
    error beside the template's."""
    cases, recipes, _ = stage_plan(stage)
    lines = ["| case | recipe | seeds | x_dgx | x_dgx, trained weights | x_dx | rec G / template |",
             "|---|---|---|---|---|---|---|"]
    for case in cases:
        for recipe in recipes:
            last = [c[-1] for c in finished_seeds(root, case, recipe)]
            if not last:
                continue
            trained = [p["dev_auroc_trained_per_score"]["x_dgx"] for p in last if "dev_auroc_trained_per_score" in p]
            lines.append(f"| {case} | {recipe} | {len(last)} | {cell([p['dev_auroc_per_score']['x_dgx'] for p in last])}"
                         f" | {cell(trained) if trained else ''} | {cell([p['dev_auroc_per_score']['x_dx'] for p in last])}"
                         f" | {np.mean([p['rec_g'] for p in last]):.1f} / {np.mean([p['rec_template'] for p in last]):.1f} |")
    return "\n".join(lines) + "\n"


def fill_readme(path, root):
    """Replace each <!-- study:STAGE --> ... <!-- /study:STAGE --> block of a Markdown file with that stage's
    table."""
    with open(path) as f:
        text = f.read()
    for stage in STAGES:
        if tables.has_markers(text, stage, "study"):
            text = tables.fill(text, stage, stage_table(root, stage), "study")
    write_text(text, path)


def main(argv=None):
    p = argparse.ArgumentParser(description="ADAE recipe study on the development AUROC.")
    p.add_argument("action", choices=("run", "table"))
    p.add_argument("--data", help="full MNIST (mnist.npz or IDX folder)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--stage", choices=STAGES, action="append")
    p.add_argument("--case", choices=CASES, action="append", help="run only these cases of the stages")
    p.add_argument("--recipe", choices=RECIPES, action="append", help="run only these recipes of the stages")
    p.add_argument("--seed", type=int, action="append", help="run only these seeds of the stages")
    p.add_argument("--root", default="study")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--readme", action="append", help="fill this file's <!-- study:STAGE --> blocks")
    args = p.parse_args(argv)
    if args.action == "run":
        if not args.data:
            p.error("run needs --data")
        for stage in args.stage or list(STAGES):
            run_study(args.data, args.steps, stage, args.root, args.threads, args.case, args.recipe, args.seed)
    try:   # a damaged summary.json names its file and the command that writes it again
        for path in args.readme or []:
            fill_readme(path, args.root)
        print(table(args.root))
    except ValueError as err:
        print(f"study: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
