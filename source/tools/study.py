"""The recipe study: ADAE's G/D balance chosen on the development AUROC, never on the test split.

    python -m source.tools.study run --data PATH [--steps 1000] [--stage NAME] [--case NAME] [--root study]
    python -m source.tools.study table [--root study] [--readme docs/study.md]   # the study table; the marked blocks

Each (case, recipe, seed) is one ordinary `run.py` run in its own process, named study_<case>_<recipe> for
seed 0 and study_<case>_<recipe>_seed<K> for seed K, so a stopped study resumes by running only what has no
summary.json yet (a run stopped after its first checkpoint goes on from its last one); two study processes on
different --case share the cores. The table reads each run's development curve (validation normals against 200
train-split anomalies, measured at log-spaced steps) from summary.json; test numbers are never read here.
"""
import argparse
import os
import subprocess
import sys

import numpy as np

from source import markdown
from source.tools.aggregate import cell
from source.config import SCORE_NAMES, SELECT_WARM_UP
from source.files import write_text
from source.rundir import RunDir

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
                if run.has_state():   # stopped earlier (a session's end): on from its last checkpoint
                    cmd.append("--resume")
                elif os.path.exists(run.log) or os.path.exists(run.results):
                    # run.py would give the run another name, which this study would never read
                    print(f"[study] {name}: stopped before its first checkpoint; remove {run.log} and "
                          f"{run.results} to run it again", flush=True)
                    continue
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
    rows = []
    for (case, recipe), curves in found.items():
        if not curves:
            continue
        last = [c[-1] for c in curves]
        cells = [cell([p["dev_auroc_per_score"][s] for p in last]) for s in names]
        cells.append(f"{np.mean([max(p['dev_auroc_per_score']['x_dgx'] for p in c) for c in curves]):.3f}")
        trained = [p["dev_auroc_trained_per_score"]["x_dgx"] for p in last if "dev_auroc_trained_per_score" in p]
        cells.append(cell(trained) if trained else "")
        mean = {k: np.mean([p[k] for p in last]) for k in ("rec_g", "rec_d", "rec_template", "k_t")}
        rows.append([case, recipe, str(len(curves)), str(last[0]["step"])] + cells
                    + [f"{mean['rec_g']:.2f} / {mean['rec_d']:.2f} / {mean['rec_template']:.2f}", f"{mean['k_t']:.2f}"])
    return markdown.table(["case", "recipe", "seeds", "steps"] + [f"{s} end" for s in names]
                          + ["x_dgx best", "x_dgx end, trained weights", "rec G / D / template", "k_t"], rows)


def stage_table(root, stage):
    """Markdown of one stage for the README: per case and recipe, the seeds, the paper score's development
    AUROC at the end (mean ± std) with the scoring weights and with the trained ones, D's own score, and G's
    error beside the template's."""
    cases, recipes, _ = stage_plan(stage)
    rows = []
    for case in cases:
        for recipe in recipes:
            last = [c[-1] for c in finished_seeds(root, case, recipe)]
            if not last:
                continue
            trained = [p["dev_auroc_trained_per_score"]["x_dgx"] for p in last if "dev_auroc_trained_per_score" in p]
            rows.append([case, recipe, str(len(last)), cell([p["dev_auroc_per_score"]["x_dgx"] for p in last]),
                         cell(trained) if trained else "", cell([p["dev_auroc_per_score"]["x_dx"] for p in last]),
                         f"{np.mean([p['rec_g'] for p in last]):.1f} / {np.mean([p['rec_template'] for p in last]):.1f}"])
    return markdown.table(["case", "recipe", "seeds", "x_dgx", "x_dgx, trained weights", "x_dx", "rec G / template"],
                          rows)


def fill_readme(path, root):
    """Replace each <!-- study:STAGE --> ... <!-- /study:STAGE --> block of a Markdown file with that stage's
    table, and each <!-- study:STAGE_checkpoints -->, <!-- study:STAGE_selection --> and <!-- study:STAGE_rule -->
    block with the tables of its rescored checkpoints (ROOT/rescore_STAGE)."""
    with open(path) as f:
        text = f.read()
    for stage in STAGES:
        if markdown.has_markers(text, "study", stage):
            text = markdown.fill(text, "study", stage, stage_table(root, stage))
        for kind, draw in (("checkpoints", budget_table), ("selection", selection_table), ("rule", rule_table)):
            if markdown.has_markers(text, "study", f"{stage}_{kind}"):
                text = markdown.fill(text, "study", f"{stage}_{kind}", draw(rescored_stage(root, stage)))
    write_text(text, path)


# --- the budget study: every kept checkpoint of a stage's runs rescored on the development split's halves ---

BUDGETS = (1000, 2000, 4000, 8000, 16000)   # the budgets a table reports (the checkpoint nearest each)
WARM_UP = SELECT_WARM_UP   # a look before this step cannot be chosen (run.py's --select best_look: the same)
RESCORE_EVERY = 700   # the rescoring's spacing: about one epoch of the paper's protocol (every checkpoint there)


def rescored_steps(steps, every=None):
    """Of a run's kept checkpoint steps, those a rescoring reads: the one nearest each multiple of `every`, nearest
    each budget, and the last. Every checkpoint of a paper-protocol run (its epochs are 699-709 iterations); about
    15 of a one-class run's 97 (digit 8: epochs of 83 iterations), where a rescoring of each costs about a
    minute beside two training runs. every: RESCORE_EVERY where None."""
    if not steps:
        return []
    every = every or RESCORE_EVERY
    targets = [*range(every, max(steps) + 1, every), *(b for b in BUDGETS if b <= max(steps)), max(steps)]
    return sorted({min(steps, key=lambda s: (abs(s - t), s)) for t in targets})


def rescore_checkpoints(arrays, run, out_path):
    """The kept checkpoints of a finished study run (rescored_steps of them), rescored: per step, each score's
    development AUROC on all the development images and on the two fixed halves, with the scoring weights (the
    moving average in --ema runs) and with the trained ones; G's and D's error of validation normals beside the
    template's. Written to out_path (JSON) after each checkpoint, so a stopped rescoring continues where it was."""
    from source import datamanager, evaluation, experiment
    from source.tools import rescore
    from source.files import read_json, write_json
    from source.neuralnet import checkpoints
    done = read_json(out_path) if os.path.isfile(out_path) else {"run": run.name, "half_seed": rescore.HALF_SEED,
                                                                   "steps": {}}
    config = run.read_config()
    (digit, _), = config.digit_seeds()
    data = datamanager.Dataset(*arrays, datnorm=config.data.datnorm, split=config.data.split,
                               **config.data.protocol_of(digit))
    model = experiment.build_model(config)
    kept = {int(path.rsplit("-", 1)[1]): path for path in checkpoints(run.log)}
    for step, path in ((str(s), kept[s]) for s in rescored_steps(list(kept))):
        if step in done["steps"]:
            continue
        model.restore(path)
        health = evaluation.validation_health(model, data)
        done["steps"][step] = {"scoring": rescore.development_aurocs(model, data, halves=True),
                               "trained": rescore.development_aurocs(model, data, halves=True, ema=False),
                               "rec_g": health["rec_g"], "rec_d": health["rec_d"]}
        write_json(done, out_path)
        print(f"[study] {run.name} step {step}: rescored", flush=True)
    model.close()
    return done


def nearest(steps, budget):
    """The step of `steps` nearest a budget (the budget's own where a run stopped short of it: None)."""
    if budget > max(steps) * 1.05:
        return None
    return min(steps, key=lambda s: abs(s - budget))


def budget_table(rescored, names=("x_dgx", "x_dgx_rel", "sap_g_x_gx", "code_g_x_gx", "nap_g_x_gx", "sap_d_x_dgx")):
    """Markdown: per (case, recipe) and budget, each score's development AUROC at the checkpoint nearest that
    budget (mean ± std over seeds), and G's / D's error of validation normals. rescored: {(case, recipe):
    [per-seed rescore_checkpoints output]}."""
    rows = []
    for (case, recipe), runs in rescored.items():
        for budget in BUDGETS:
            at = [(r, nearest([int(s) for s in r["steps"]], budget)) for r in runs]
            at = [(r, s) for r, s in at if s is not None]
            if not at:
                continue
            points = [r["steps"][str(s)] for r, s in at]
            cells = [cell([p["scoring"]["all"][n] for p in points if n in p["scoring"]["all"]]) for n in names]
            rows.append([case, recipe, str(len(at)), f"{budget} ({', '.join(str(s) for _, s in at)})"] + cells
                        + [f"{np.mean([p['rec_g'] for p in points]):.2f} / {np.mean([p['rec_d'] for p in points]):.2f}"])
    return markdown.table(["case", "recipe", "seeds", "budget (checkpoint)"] + list(names) + ["rec G / D"], rows)


def selection_candidates(rescored_run, name):
    """The three candidates of the selection rule for one run and score, each as (chosen step, AUROC on half a,
    AUROC on half b): the last trained weights, their moving average at the last step, and the checkpoint with
    the best half-a AUROC at or after WARM_UP (moving average)."""
    steps = sorted(int(s) for s in rescored_run["steps"])
    last = rescored_run["steps"][str(steps[-1])]
    out = {"last trained weights": (steps[-1], last["trained"]["a"].get(name), last["trained"]["b"].get(name)),
           "moving average, last step": (steps[-1], last["scoring"]["a"][name], last["scoring"]["b"][name])}
    from source.evaluation import best_half_a
    best = best_half_a([(s, rescored_run["steps"][str(s)]["scoring"]["a"][name]) for s in steps
                        if name in rescored_run["steps"][str(s)]["scoring"]["a"]], WARM_UP)
    if best is not None:
        point = rescored_run["steps"][str(best)]["scoring"]
        out["best half-a look after warm-up"] = (best, point["a"][name], point["b"][name])
    return out


CANDIDATES = ("last trained weights", "moving average, last step", "best half-a look after warm-up")
SIMPLER_FIRST = (CANDIDATES[1], CANDIDATES[0], CANDIDATES[2])   # the rule's order for a tie: (2), (1), (3)
TIE = 0.01   # candidates whose half-b means are this close are tied


def rule_choice(runs, name):
    """The selection rule (docs/study.md) for one score over runs (rescore_checkpoints outputs): each
    candidate's mean AUROC on half b over the runs, where it exists on every one (the trained weights have no
    fitted score in --ema runs; a run that ended before WARM_UP has no look to choose); the highest, or the
    simplest of those within TIE of it. Returns (the choice or None, {candidate: mean half-b AUROC})."""
    per_run = [selection_candidates(r, name) for r in runs]
    means = {key: float(np.mean([c[key][2] for c in per_run])) for key in CANDIDATES
             if per_run and all(c.get(key, (None, None, None))[2] is not None for c in per_run)}
    if not means:
        return None, means
    best = max(means.values())
    return next(key for key in SIMPLER_FIRST if key in means and means[key] >= best - TIE), means


def seed_of(rescored_run):
    """The seed of a rescored run, from its name (run_name: no suffix for seed 0)."""
    head, _, tail = rescored_run["run"].rpartition("_seed")
    return int(tail) if head and tail.isdigit() else 0


def rule_table(rescored, names=("x_dgx", "x_dgx_rel", "code_g_x_gx", "nap_g_x_gx")):
    """Markdown: the selection rule applied per score over every finished run of the stage (cases, recipes and
    seeds: the rule's own reading), then over each recipe's runs alone, then (where two recipes have finished
    the same case and seed) over the cases and seeds every recipe has finished, the fair comparison of recipes
    while a stage is unfinished: each candidate's mean half-b AUROC and the rule's choice."""
    scopes = [("every run", [r for runs in rescored.values() for r in runs])]
    recipes = list(dict.fromkeys(recipe for _, recipe in rescored))
    of = {recipe: {(case, seed_of(r)): r for (case, rec), runs in rescored.items() if rec == recipe for r in runs}
          for recipe in recipes}
    scopes += [(recipe, list(of[recipe].values())) for recipe in recipes]
    paired = set.intersection(*(set(runs) for runs in of.values())) if len(recipes) > 1 else set()
    scopes += [(f"{recipe}, paired", [of[recipe][key] for key in sorted(paired)]) for recipe in recipes if paired]
    rows = []
    for scope, runs in scopes:
        for name in names:
            choice, means = rule_choice(runs, name)
            rows.append([scope, str(len(runs)), name] + [f"{means[k]:.3f}" if k in means else "" for k in CANDIDATES]
                        + [choice or ""])
    return markdown.table(["runs", "n", "score", *CANDIDATES, "the rule's choice"], rows)


def selection_table(rescored, names=("x_dgx", "x_dgx_rel", "code_g_x_gx", "nap_g_x_gx")):
    """Markdown: per (case, recipe, seed) and score, each candidate's chosen step and its AUROC on half b (the
    half it was not chosen on), half a in brackets."""
    rows = []
    for (case, recipe), runs in rescored.items():
        for r in runs:
            for name in names:
                cands = selection_candidates(r, name)
                cells = []
                for key in CANDIDATES:
                    step, a, b = cands.get(key, (None, None, None))
                    cells.append("" if b is None else f"{b:.3f} ({a:.3f}; step {step})")
                rows.append([case, recipe, r["run"], name] + cells)
    return markdown.table(["case", "recipe", "run", "score", *CANDIDATES], rows)


def rescored_stage(root, stage, arrays=None, only_cases=None):
    """{(case, recipe): [each finished seed's rescore_checkpoints output]} of a stage, from ROOT/rescore_<stage>/;
    with arrays, the finished runs not yet rescored (or rescored in part) are rescored first (only_cases: only
    those cases' runs, so two processes can rescore different cases at once)."""
    cases, recipes, seeds = stage_plan(stage)
    folder = os.path.join(root, f"rescore_{stage}")
    out = {}
    for case in cases:
        for recipe in recipes:
            for seed in range(seeds):
                name = run_name(case, recipe, seed)
                run, path = study_run(root, name), os.path.join(folder, name + ".json")
                if arrays is not None and run.is_finished() and os.path.isdir(run.log) and \
                        (not only_cases or case in only_cases):
                    os.makedirs(folder, exist_ok=True)
                    rescore_checkpoints(arrays, run, path)
                if os.path.isfile(path):
                    from source.files import read_json
                    out.setdefault((case, recipe), []).append(read_json(path))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="ADAE recipe study on the development AUROC.")
    p.add_argument("action", choices=("run", "table", "rescore"), help="rescore: every kept checkpoint of the "
                   "stages' finished runs on the development halves (needs --data; the budget stage keeps them all)")
    p.add_argument("--data", help="full MNIST (mnist.npz or IDX folder)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--stage", choices=STAGES, action="append")
    p.add_argument("--case", choices=CASES, action="append", help="run (rescore) only these cases of the stages")
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
        if args.action == "rescore":
            if not args.data:
                p.error("rescore needs --data")
            from source import datamanager
            arrays, _ = datamanager.load_data(args.data)
            for stage in args.stage or ["budget"]:
                found = rescored_stage(args.root, stage, arrays, args.case)
                print(budget_table(found) + "\n" + selection_table(found) + "\n" + rule_table(found))
        for path in args.readme or []:
            fill_readme(path, args.root)
        print(table(args.root))
    except ValueError as err:
        print(f"study: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

