"""Reading a strategy's frontier at a fixed emotion cost: known curves, the bootstrap over seeds, the
targets, and unseen-speaker runs planned at every strength."""

from __future__ import annotations

import math

import pytest

from avdisentangle.cli import main
from avdisentangle.evaluation import analysis, tables
from avdisentangle.evaluation.frontier_plot import plot_unseen_by_strength
from avdisentangle.evaluation.metrics import Interval
from avdisentangle.evaluation.run_plan import Profile, plan_runs
from avdisentangle.evaluation.tradeoff import removed_at, slope_through_origin, tradeoff_table, tradeoffs
from tests.test_report import analysis_config_dir, run_row


def test_removal_at_a_budget_interpolates_between_strengths():
    costs, removed = [-0.5, -1.5, -4.0], [10.0, 30.0, 60.0]
    assert removed_at(costs, removed, -1.0) == (pytest.approx(20.0), True)  # halfway from 10 to 30
    assert removed_at(costs, removed, -2.0) == (pytest.approx(30.0 + 0.5 / 2.5 * 30.0), True)
    assert removed_at(costs, removed, -5.0) == (60.0, False)  # the strongest costs only 4 points: a lower bound
    # A strategy whose strongest strength removes little: the best point within budget counts, not the last.
    assert removed_at([-0.2, -0.8], [40.0, 5.0], -1.0) == (40.0, False)
    # Identity removed for free: the whole curve is within any budget.
    assert removed_at([+0.5, +0.3], [20.0, 35.0], -1.0) == (35.0, False)
    # The first strength already costs more than the budget: interpolate from `none` at (0, 0).
    assert removed_at([-4.0], [80.0], -1.0) == (pytest.approx(20.0), True)


def test_slope_counts_only_strengths_that_cost_emotion():
    assert slope_through_origin([-1.0, -2.0], [10.0, 20.0]) == pytest.approx(10.0)
    assert slope_through_origin([+1.0, -2.0], [50.0, 20.0]) == pytest.approx(10.0)
    assert math.isnan(slope_through_origin([+1.0], [50.0]))


def strength_row(strategy, seed, strength, uar, leak):
    row = run_row(strategy, seed, uar, leak)
    row["strength"] = strength
    return row


def test_tradeoffs_over_seeds_have_bootstrap_intervals_and_skip_single_strengths():
    rows = [run_row("none", s, 0.80, 0.9) for s in range(4)]
    for seed, jitter in enumerate([-0.01, 0.0, 0.01, 0.0]):
        rows += [
            strength_row("hsic", seed, float("nan"), 0.795 + jitter / 10, 0.80),  # the file's strength (0.1)
            strength_row("hsic", seed, 1.0, 0.78 + jitter, 0.55 + jitter),
            strength_row("hsic", seed, 10.0, 0.60 + jitter, 0.20),
        ]
    rows += [run_row("grl", s, 0.80, 0.85) for s in range(4)]  # one strength: no curve to read
    analysis.add_paired_columns(rows)
    result = tradeoffs(rows, {"none": None, "hsic": 0.1, "grl": 0.03})
    assert set(result) == {"hsic"}
    hsic = result["hsic"]
    assert (hsic.strengths, hsic.seeds) == (3, 4)
    at_one = hsic.removed["disentanglement_floor_pct"][-1.0]
    # Seed means: 0.1 -> (-0.5, 14.3%), 1.0 -> (-2, 50%); at -1 point: a third of the way from 14.3 to 50.
    assert at_one.mean == pytest.approx(100 / 7 + (0.5 / 1.5) * (50 - 100 / 7), abs=0.01)
    assert at_one.low <= at_one.mean <= at_one.high and at_one.high - at_one.low > 0
    assert hsic.reached["disentanglement_floor_pct"][-5.0] and hsic.removed["disentanglement_floor_pct"][-5.0].mean > 50
    text = tradeoff_table(result)
    assert text.splitlines()[2].startswith("| hsic | 3 x 4 |") and "D_info % at ΔUAR -1" in text


def summary_of(**intervals) -> dict:
    nan = float("nan")
    given = {k: Interval(*v) if isinstance(v, tuple) else Interval(v, nan, nan) for k, v in intervals.items()}
    return {"delta_uar_points": Interval(0.0, -0.5, 0.5), **given}


def test_targets_are_graded_by_information_and_by_accuracy_at_held_emotion():
    closed = {
        ("none", None): summary_of(disentanglement_info_pct=0.0, disentanglement_floor_pct=0.0),
        ("grl", None): summary_of(disentanglement_info_pct=(35.0, 10.0, 60.0), disentanglement_floor_pct=(14, 2, 26)),
        ("hsic", None): summary_of(disentanglement_info_pct=(70.0, -5.0, 140.0), disentanglement_floor_pct=(40, 1, 80)),
    }
    unseen = {("grl", 0.3): {"unseen_delta_uar_points": Interval(2.0, 0.5, 3.5)}}
    lines = tables.targets(closed, unseen, {}, ("grl", "confusion", "orthogonal"))
    assert "met (best: grl, 35.0%)" in lines[0]
    assert "not met (best: grl, 35.0%)" in lines[1]  # hsic's 70% has an interval reaching below 0
    assert "met (best: hsic, 40.0%)" in lines[2]
    assert "met (grl at 0.3)" in lines[3]


def test_unseen_speakers_are_run_at_every_strength_of_the_grid(tmp_path):
    sweep_dir = tmp_path / "sweeps"
    sweep_dir.mkdir()
    (sweep_dir / "grl.yaml").write_text("parameters:\n  trainer.callbacks.weight:\n    min: 0.01\n    max: 1.0\n")
    specs = plan_runs(["none", "grl"], analysis_config_dir(), sweep_dir, Profile(seeds=2, folds=3, grid=3), 2, 3)
    unseen = [(s.strategy, s.strength) for s in specs if s.split == "unseen"]
    assert unseen.count(("none", None)) == 3
    for weight in (None, 0.01, 0.1, 1.0):  # the file's own (0.03) and the sweep file's three
        assert unseen.count(("grl", weight)) == 3


def test_unseen_by_strength_plot_is_written(tmp_path):
    curves = {"grl": [(0.03, (0.6, 0.55, 0.65)), (0.3, (0.62, 0.58, 0.66)), (3.0, (0.4, 0.3, 0.5))]}
    path = plot_unseen_by_strength(curves, tmp_path / "unseen.png", (0.6, 0.56, 0.64))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        plot_unseen_by_strength({"grl": []}, tmp_path / "empty.png")


def test_given_strengths_replace_the_sweep_grid_and_must_name_strategies_that_run(tmp_path, capsys):
    specs = plan_runs(
        ["none", "grl"], analysis_config_dir(), tmp_path, Profile(seeds=1, folds=0, grid=5), 1, 0, {"grl": [0.3, 1]}
    )
    assert [(s.strategy, s.strength) for s in specs] == [("none", None), ("grl", None), ("grl", 0.3), ("grl", 1.0)]
    with pytest.raises(SystemExit):
        main(["report", "--strategies=none,grl", "--strengths={hsic: [1]}", f"--output={tmp_path}"])
    assert "--strengths names hsic, which this report does not run" in capsys.readouterr().err
