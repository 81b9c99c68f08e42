"""The calibration probes of docs/protocol.md: the same factors for every tuned method, chosen by rule."""

import json

import pytest
import yaml

from pipeline.config import method_section
from pipeline.experiments import TABLE_METHODS, calibration
from pipeline.overlays import set_args
from pipeline.roles import METHOD_NAMES
from pipeline.statistics import choose
from tests.conftest import REPO

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


class Probe:
    """The two calls choose() makes of a collected experiment."""

    def __init__(self, mious: dict[str, list[float]]) -> None:
        self.eval = {k: [{"miou": m} for m in v] for k, v in mious.items()}

    def miou(self, key: str) -> list[float]:
        return [r["miou"] for r in self.eval[key]]


def test_every_tuned_weight_is_scaled_by_one_factor():
    sets = calibration.probe_sets(PARAMS, 3.0)
    assert sets["distill.w_kd"] == 9.0 and sets["compare.hparams.cwd.w_features"] == 150.0
    assert sets["compare.hparams.afdcd.w_fd"] == pytest.approx(1.2e-4) and sets["controls.w_kd"] == 9.0
    assert len(sets) == sum(len(keys) for _, keys in calibration.TUNED.values())
    exps = calibration.plan(PARAMS)
    assert [e.name for e in exps] == ["calib-x1", "calib-x0.33", "calib-x3"]
    assert all(e.seeds == (100, 101) and e.sets["synthetic.seed"] == 1 and e.folder == e.name for e in exps)
    assert all(min(e.seeds) >= 100 for e in exps)  # never a reported seed
    assert str(exps[0].runs) == "reports/paper/calibration"
    # every set reads back as the number it is (PyYAML takes 4e-05 without a mantissa point for a string)
    args = set_args(exps[0].sets)
    assert "compare.hparams.afdcd.w_fd=4.0e-05" in args
    assert all(not isinstance(yaml.safe_load(a.split("=")[1]), str) for a in args if "=" in a and "w_" in a)


def test_the_best_factor_is_chosen_and_the_official_one_on_a_tie(tmp_path):
    probes = {1 / 3: Probe({"distill_kd": [40.0, 42.0], "lad_student": [50.0, 50.0]}),
              1.0: Probe({"distill_kd": [41.0, 41.0], "lad_student": [45.0, 47.0]}),
              3.0: Probe({"distill_kd": [41.2, 41.6], "lad_student": [44.0, 44.0]})}
    chosen = choose(probes)
    assert chosen["kd"]["scale"] == 1.0  # 41.4 is within 0.5 of 41: the committed weights stay
    assert chosen["lad"]["scale"] == pytest.approx(1 / 3) and chosen["lad"]["scores"]["0.3333"] == 50.0
    assert set(chosen) == {"kd", "lad"}  # methods without a student in the probes are not tuned
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"methods": chosen}))
    assert calibration.chosen_sets(PARAMS, path) == {"distill.w_kd": 1.0}
    assert calibration.chosen_sets(PARAMS, tmp_path / "none.json") == {}


def test_a_methods_tuned_weights_are_declared_where_it_is_defined():
    """calibration.TUNED follows the roles table, whose comparison rows take their weights from each method's
    section of pipeline/config.py: a new method is calibrated without a line here (the from-scratch table's
    methods; one added since, FitNet, is the pretrained regime's)."""
    assert set(METHOD_NAMES) - set(TABLE_METHODS) == {"fitnet"} and "fitnet" not in calibration.TUNED
    for m in TABLE_METHODS:
        evaluation, keys = calibration.TUNED[m]
        tuned = method_section(m).tuned
        assert evaluation == f"distill_{m}" and keys == tuple(f"compare.hparams.{m}.{k}" for k in tuned)
        assert tuned and all(k in PARAMS["compare"]["hparams"][m] for k in tuned)
    assert calibration.TUNED["lad"] == ("lad_student", ("distill.w_kd",))
