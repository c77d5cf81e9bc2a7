"""The README's figure of development and test AUROC along training, from committed records.

    python -m source.tools.curves OUT.png RECORDS/SWEEP/SUB-RUN.json [...] [--columns N]   # one panel per record

Each panel is titled by the record's recipe (objective, lr, code) and case (protocol, digit, split).
"""
import argparse
import sys


def title_of(summary):
    """One line that says which recipe and case a record is."""
    m, d = summary.config.model, summary.config.data
    return (f"--{d.protocol} {summary.digit}, --split {d.split}\n--objective {m.objective} --lr {m.lr:g} "
            f"--latent {m.latent}, {summary.final_epoch['step'] if summary.final_epoch else 0} iterations")


def main(argv=None):
    p = argparse.ArgumentParser(description="AUROC along training (development and test diagnostic) from records.")
    p.add_argument("out")
    p.add_argument("records", nargs="+")
    p.add_argument("--columns", type=int, help="panels per row (default: all in one row)")
    args = p.parse_args(argv)
    from source.files import read_json
    from source.plots import auroc_curves
    from source.record import Summary
    try:   # a damaged record: one line naming it
        summaries = [Summary.from_dict(read_json(path)) for path in args.records]
    except ValueError as err:
        print(f"curves: error: {err}", file=sys.stderr)
        return 2
    auroc_curves([(title_of(s), s) for s in summaries], args.out, columns=args.columns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
