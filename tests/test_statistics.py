"""The protocol's comparisons: paired by seed, on one CPU model per seed, worded as far as the intervals allow."""

import pytest

from pipeline.experiments.protocol import ROW_SETS
from pipeline.results import Results
from pipeline.statistics import Comparison, detectable, paired, power
from pipeline.words.questions import answers, bounds, losses_list, outcomes, sentence, summary_table

CPU = "Intel(R) Xeon(R) Processor, 2 cores"


def run(name: str, seeds: list[int], mious: dict[str, list[float]], cpu: str = CPU) -> Results:
    return Results(None, seeds, {k: [{"miou": m} for m in v] for k, v in mious.items()}, {}, name,
                   {"cpu": cpu, "shards": [{"seeds": seeds, "cpu": cpu}]})


def test_power_and_the_detectable_difference_by_hand():
    assert power(0.0, 1.0, 5) == pytest.approx(0.05, abs=1e-6)  # no difference: the test's size
    assert power(5.89, 3.25, 5) > 0.8 > power(5.89, 3.25, 4)  # benchmarks/power.py's table: 5 seeds
    assert power(detectable(3.25, 8), 3.25, 8) >= 0.8 > power(detectable(3.25, 8) - 0.05, 3.25, 8)


def test_a_comparison_pairs_seeds_both_rows_ran():
    runs = {"paper": run("paper", [0, 2, 3], {"lad_student": [40, 42, 44], "baseline": [30, 33, 36]}),
            "paper-compare": run("paper-compare", [0, 3], {"lad_student": [40, 44], "distill_kd": [45, 49]})}
    o = paired(runs, Comparison(("paper", "lad_student"), ("paper", "baseline"), "the LAD student", "the baseline"))
    assert o.seeds == [0, 2, 3] and o.diffs == [10, 9, 8] and o.wins == 3 and o.finding
    assert "higher on 3 of 3" in sentence(o) and "the interval excludes zero" in sentence(o)
    lower = paired(runs, Comparison(("paper-compare", "lad_student"), ("paper-compare", "distill_kd"),
                                    "the LAD student", "the KD student"))
    assert lower.diffs == [-5, -5] and "lower" in sentence(lower)
    text, losses = answers(outcomes(runs, ROW_SETS.get, ["kd"]))
    assert "**3. Does the teacher teach more than its label?** Not run." in text
    assert losses == [lower]
    assert "the LAD student below the KD student: -5.00 mIoU [-5.00, -5.00], higher on 0 of 2" in losses_list(losses)
    one = paired({"paper-long": run("paper-long", [0], {"lad_student": [50], "baseline": [52]})},
                 Comparison(("paper-long", "lad_student"), ("paper-long", "baseline"), "the LAD student",
                            "the baseline"))
    assert bounds(one) == "—" and losses_list([one]) == \
        "- the LAD student below the baseline: -2.00 mIoU (one seed: no interval), higher on 0 of 1 seeds"
    table = summary_table(outcomes(runs, ROW_SETS.get, ["kd"])).splitlines()
    assert table[2] == "| 2 | the LAD student − the baseline (equal student steps) | +9.00 | [+6.52, +11.48] | 3 of 3 |"
    assert table[3] == "| 4 | the LAD student − the KD student | -5.00 | [-5.00, -5.00] | 0 of 2 |" and len(table) == 4


def test_noise_is_called_noise_and_cpus_are_never_mixed_in_a_pair():
    runs = {"paper": run("paper", [0, 2, 3], {"lad_student": [40, 30, 44], "baseline": [35, 36, 37]})}
    o = paired(runs, Comparison(("paper", "lad_student"), ("paper", "baseline"), "the LAD student", "the baseline"))
    assert not o.finding and "3 seeds cannot tell them apart (they had 80 % power for a difference of" in sentence(o)
    runs["other"] = run("other", [0], {"baseline": [30]}, cpu="AMD EPYC")
    with pytest.raises(ValueError, match="seed 0: paper ran on Intel.* and other on AMD EPYC"):
        paired(runs, Comparison(("paper", "lad_student"), ("other", "baseline"), "a", "b"))
