"""One rule for results over seeds and digits, for every table of them (the README's, a sweep's sweep.md,
rescore's): what depends on the seed (ADAE and its scores, ConvAE and its scores) is the mean ± std over seeds
(ddof 0); a classic baseline, the same in every seed's sub-run (checked), is shown once. The mean over digits
is each digit's mean over its seeds, ± the std over the seeds every digit has of each seed's mean over the
digits. NumPy only, so that a sweep and every table tool import it."""
import numpy as np

SEEDED = ("ADAE", "ConvAE")   # methods that train with the run's seed (each of their scores too); the classic ones do not
SAME = 1e-6   # a classic baseline's AUROC in two seeds' sub-runs: equal but for BLAS's last bits (seen: 5e-8)
READING = ("mean ± std over seeds (ADAE and ConvAE; the classic baselines do not depend on the seed); the seeds "
           "column counts each row's seeds (the mean rows: the seeds every digit has, which their ± are over)")


def seeded(method):
    """Whether a method's result depends on the run's seed: ADAE's and ConvAE's, and their scores' ("ADAE x_dgx",
    "ConvAE nap_g_x_gx")."""
    return method.split(" ", 1)[0] in SEEDED


def cell(values):
    """mean, or mean ± std (over seeds, ddof 0) where there are several."""
    return f"{np.mean(values):.3f}" + (f" ± {np.std(values):.3f}" if len(values) > 1 else "")


def mean_cell(by_digit, seeds):
    """by_digit: digit -> seed -> value. The mean over digits of each digit's mean over its seeds, ± the std
    over `seeds` (the seeds every digit has) of each seed's mean over the digits, where there are several."""
    mean = np.mean([np.mean(list(by_seed.values())) for by_seed in by_digit.values()])
    spread = [np.mean([by_seed[seed] for by_seed in by_digit.values()]) for seed in seeds]
    return f"{mean:.3f}" + (f" ± {np.std(spread):.3f}" if len(spread) > 1 else "")


class OverSeeds:
    """Methods' results by digit and seed under the rule: the cells of a digit's row and of a mean row."""

    def __init__(self, results, methods, classic=()):
        """results: digit -> seed -> method -> value; methods: the columns in order; classic: those of them that
        do not depend on the seed. ValueError where a classic one differs between a digit's seeds."""
        self.results, self.methods, self.classic = results, list(methods), set(classic)
        for digit, by_seed in results.items():
            for m in self.methods:
                if m in self.classic and np.ptp([v[m] for v in by_seed.values()]) > SAME:
                    raise ValueError(f"{m} on digit {digit} differs between seeds, which it does not depend on")
        self.digits = sorted(results)
        self.common = sorted(set.intersection(*(set(results[d]) for d in self.digits)))   # the seeds every digit has

    def values(self, digit, method):
        """A method's values on a digit, one per seed (a classic baseline's once)."""
        values = [v[method] for v in self.results[digit].values()]
        return values[:1] if method in self.classic else values

    def row(self, digit, bold_best=False):
        """A digit's cells, one per method; bold_best: the best mean in bold."""
        means = {m: np.mean(self.values(digit, m)) for m in self.methods}
        best = max(means.values())
        return [f"**{cell(self.values(digit, m))}**" if bold_best and means[m] == best else cell(self.values(digit, m))
                for m in self.methods]

    def mean_row(self, digits):
        """The cells of the mean over `digits`, one per method (a classic baseline's without ±)."""
        return [mean_cell({d: dict(zip(self.results[d], self.values(d, m))) for d in digits},
                          [] if m in self.classic else self.common) for m in self.methods]

    def mean_std(self):
        """{method: {digit: (mean, std)}} over each digit's seeds (a classic baseline's std 0), for a chart."""
        return {m: {d: (float(np.mean(self.values(d, m))), float(np.std(self.values(d, m)))) for d in self.digits}
                for m in self.methods}
