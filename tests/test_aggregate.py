"""The one rule for results over seeds and digits (source.tools.aggregate), against NumPy on small numbers: a
seeded method's mean ± std (ddof 0), a classic baseline once and refused where its seeds differ, the mean over
digits ± the std over the seeds every digit has."""
import numpy as np
import pytest

from source.tools.aggregate import OverSeeds, cell, mean_cell, seeded


def test_cells_and_which_methods_depend_on_the_seed():
    assert cell([0.5]) == "0.500"
    assert cell([0.5, 0.7]) == f"0.600 ± {np.std([0.5, 0.7]):.3f}" == "0.600 ± 0.100"
    assert seeded("ADAE x_dgx") and seeded("ConvAE nap_g_x_gx") and seeded("ConvAE")
    assert not seeded("kNN") and not seeded("MeanImage")


def test_the_mean_over_digits_is_over_each_digits_seed_mean_with_the_spread_over_common_seeds():
    by_digit = {1: {0: 0.2, 1: 0.4, 2: 0.9}, 2: {0: 0.8, 1: 0.6}}
    # digit means 0.5 and 0.7 -> 0.6; the seeds both digits have (0, 1): seed means 0.5 and 0.5 -> std 0
    assert mean_cell(by_digit, [0, 1]) == "0.600 ± 0.000"
    assert mean_cell(by_digit, []) == "0.600"


def test_over_seeds_rows_classic_once_and_a_differing_classic_refused():
    results = {3: {0: {"ADAE": 0.70, "kNN": 0.9}, 1: {"ADAE": 0.80, "kNN": 0.9}},
               5: {0: {"ADAE": 0.95, "kNN": 0.6}, 1: {"ADAE": 0.85, "kNN": 0.6}}}
    grid = OverSeeds(results, ["ADAE", "kNN"], classic=["kNN"])
    assert grid.digits == [3, 5] and grid.common == [0, 1]
    assert grid.row(3, bold_best=True) == ["0.750 ± 0.050", "**0.900**"]
    assert grid.row(5, bold_best=True) == ["**0.900 ± 0.050**", "0.600"]
    seed_means = [np.mean([0.70, 0.95]), np.mean([0.80, 0.85])]
    assert grid.mean_row([3, 5]) == [f"0.825 ± {np.std(seed_means):.3f}", "0.750"]
    assert grid.mean_std()["kNN"] == {3: (0.9, 0.0), 5: (0.6, 0.0)}
    results[5][1]["kNN"] = 0.61
    with pytest.raises(ValueError, match="kNN on digit 5 differs between seeds"):
        OverSeeds(results, ["ADAE", "kNN"], classic=["kNN"])
