"""The D-CPT Law planner: recovers the best domain share from noisy losses of known parameters."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pipelines.cli import main
from pipelines.planner import (
    Fit,
    PlannerError,
    dcpt_law,
    format_plan,
    plan_mixture,
    read_losses,
    recommend_ratio,
)

EPS = 0.01
#: E, A, alpha, B, eta, beta, C, gamma: general loss rises as its share r_g = 1 - r falls, domain loss
#: falls as r grows; with a 1% tolerance the best r (0.79) sits inside (0, 1), on the constraint.
GENERAL = (1.9, 250.0, 0.3, 1.0, 0.5, 0.2, 0.02, 0.6)
DOMAIN = (1.6, 250.0, 0.3, 1.0, 0.5, 0.2, 0.05, 0.5)
R_TOLERANCE = 0.03  # stated tolerance on r at noise sigma 0.002 (measured: max error 0.0135 over 10 seeds)


def _theta(p):
    e, a, alpha, b, eta, beta, c, gamma = p
    return np.array([e, math.log(a), alpha, math.log(b), eta, beta, math.log(c), gamma])


def _pilots(sigma: float, seed: int) -> dict[str, np.ndarray]:
    grid = [(n, d, r) for n in (1e8, 3e8, 1e9) for d in (1e9, 3e9, 1e10)
            for r in (0, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 1.0)]
    n, d, r = (np.array(x, dtype=float) for x in zip(*grid, strict=True))
    rng = np.random.default_rng(seed)
    return {"N": n, "D": d, "r": r,
            "general_loss": dcpt_law(_theta(GENERAL), n, d, 1 - r, EPS) + rng.normal(0, sigma, len(n)),
            "domain_loss": dcpt_law(_theta(DOMAIN), n, d, r, EPS) + rng.normal(0, sigma, len(n))}


def _true_r(tolerance: float) -> float:
    exact = [Fit(_theta(p), EPS, 1.0, 0.0, 1, 1, 0.0) for p in (GENERAL, DOMAIN)]
    return recommend_ratio(exact[0], exact[1], 1e9, 1e10, tolerance).r


@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_the_optimal_ratio_from_noisy_pilots(seed):
    plan = plan_mixture(_pilots(0.002, seed), tolerance=0.01, restarts=12, seed=seed)
    truth = _true_r(0.01)
    assert 0.6 < truth < 0.95  # an interior optimum, set by the general-loss constraint
    assert abs(plan.r - truth) <= R_TOLERANCE, (plan.r, truth)
    assert plan.general.r2 > 0.999 and plan.domain.r2 > 0.999
    assert plan.general.rmse < 0.003 and plan.domain.rmse < 0.003
    assert plan.general_loss <= plan.base_general_loss * 1.01 + 1e-9
    assert plan.feasible is not None and plan.feasible[0] == 0.0
    d = plan.to_dict()
    assert d["recommended_r"] == round(plan.r, 4) and len(d["curve"]) == 21 and not d["warnings"]


def test_a_tighter_tolerance_or_a_lower_base_loss_lowers_r():
    losses = _pilots(0.0, 0)
    loose = plan_mixture(losses, tolerance=0.02, restarts=6)
    tight = plan_mixture(losses, tolerance=0.002, restarts=6)
    assert tight.r < loose.r
    impossible = plan_mixture(losses, tolerance=0.0, base_general_loss=1.0, restarts=6)
    assert impossible.r == 0.0 and impossible.feasible is None and "no r keeps" in impossible.warnings[0]


def test_csv_errors_name_the_problem(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("N,D,r,general_loss\n1,2,0.5,3\n")
    with pytest.raises(PlannerError, match="missing column.*domain_loss"):
        read_losses(str(path))
    path.write_text("N,D,r,general_loss,domain_loss\n1e9,1e10,0.5,2.4,x\n")
    with pytest.raises(PlannerError, match="line 2: column domain_loss is 'x'"):
        read_losses(str(path))
    path.write_text("N,D,r,general_loss,domain_loss\n1e9,1e10,1.5,2.4,2\n")
    with pytest.raises(PlannerError, match="r is the domain share"):
        read_losses(str(path))


def test_cli_plan_mixture(tmp_path, capsys):
    losses = _pilots(0.002, 0)
    path = tmp_path / "losses.csv"
    keys = ("N", "D", "r", "general_loss", "domain_loss")
    rows = zip(*(losses[k] for k in keys), strict=True)
    path.write_text(",".join(keys) + "\n" + "".join(",".join(f"{v:.8g}" for v in row) + "\n" for row in rows))
    out = tmp_path / "plan.json"
    assert main(["plan-mixture", "--losses", str(path), "--tolerance", "0.01", "--restarts", "8",
                 "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "recommended domain share r = " in printed and "R²" in printed
    plan = json.loads(out.read_text())
    assert abs(plan["recommended_r"] - _true_r(0.01)) <= R_TOLERANCE
    assert main(["plan-mixture", "--losses", str(tmp_path / "nope.csv")]) == 2
    # the same pilots read as domain vs replay data: the replay share is 1 - r, ready for a recipe
    assert main(["plan-mixture", "--losses", str(path), "--tolerance", "0.01", "--restarts", "8", "--replay",
                 "--output", str(out)]) == 0
    assert "recommended replay share = " in capsys.readouterr().out
    replay = json.loads(out.read_text())
    assert replay["replay"]["share"] == pytest.approx(1 - replay["recommended_r"])
    low, high = replay["replay"]["feasible_share"]
    assert low <= replay["replay"]["share"] <= high


def _pilots_at(r_values: tuple[float, ...], sigma: float, seed: int) -> dict[str, np.ndarray]:
    grid = [(n, d, r) for n in (1e8, 3e8, 1e9) for d in (1e9, 3e9, 1e10) for r in r_values]
    n, d, r = (np.array(x, dtype=float) for x in zip(*grid, strict=True))
    rng = np.random.default_rng(seed)
    return {"N": n, "D": d, "r": r,
            "general_loss": dcpt_law(_theta(GENERAL), n, d, 1 - r, EPS) + rng.normal(0, sigma, len(n)),
            "domain_loss": dcpt_law(_theta(DOMAIN), n, d, r, EPS) + rng.normal(0, sigma, len(n))}


def test_a_recommendation_outside_the_pilots_r_range_is_flagged():
    losses = _pilots_at((0.3, 0.5, 0.7, 0.9), 0.0, 0)
    inside = plan_mixture(losses, tolerance=0.002, restarts=6, bootstrap=0)
    assert 0.3 <= inside.r <= 0.9 and not any("outside the pilots' r range" in w for w in inside.warnings)
    outside = plan_mixture(losses, tolerance=0.0005, restarts=6, bootstrap=0)
    assert outside.r < 0.3
    (warning,) = [w for w in outside.warnings if "outside the pilots' r range" in w]
    assert f"r = {outside.r:.3f}" in warning and "[0.3, 0.9]" in warning


def test_a_near_zero_exponent_is_a_degenerate_fit():
    # eta ~ 0 makes B * r^eta a step: r = 0 escapes the whole term, any r > 0 pays it in full
    step = (1.6, 250.0, 0.3, 1000.0, 1e-4, 0.2, 0.05, 0.5)
    exact = [Fit(_theta(p), EPS, 1.0, 0.0, 1, 1, 0.0, (0.1, 0.9)) for p in (GENERAL, step)]
    plan = recommend_ratio(exact[0], exact[1], 1e9, 1e10, 0.01)
    assert any("exponent eta = 0.0001 is ~0" in w for w in plan.warnings), plan.warnings
    assert plan.r == 0.0 and any("outside the pilots' r range [0.1, 0.9]" in w for w in plan.warnings)


def test_confidence_is_reported_and_tracks_the_noise():
    quiet = plan_mixture(_pilots(0.002, 0), tolerance=0.01, restarts=6, bootstrap=8)
    noisy = plan_mixture(_pilots_at((0.2, 0.5, 0.8), 0.05, 1), tolerance=0.01, restarts=6, bootstrap=8)
    for plan in (quiet, noisy):
        c = plan.to_dict()["confidence"]
        assert c["rmse"]["domain"] == pytest.approx(plan.domain.rmse, rel=1e-3)
        lo, hi = c["r_near_best_restarts"]
        assert lo <= plan.r <= hi
        assert c["r_bootstrap"]["samples"] == 8
    spread = [p.confidence["r_bootstrap"]["p90"] - p.confidence["r_bootstrap"]["p10"] for p in (quiet, noisy)]
    assert spread[0] < 0.05 < spread[1], spread
    assert any("resampled pilot runs recommend r from" in w for w in noisy.warnings)
    assert not quiet.warnings
    assert "bootstrap r" in format_plan(noisy) and "confidence:" in format_plan(quiet)
