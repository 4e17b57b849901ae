"""Choose the domain share of a CPT mixture from a few pilot runs, with the D-CPT Law.

The D-CPT Law (Que et al., 2024, arXiv:2406.01375) models a validation loss after continual
pre-training of a model with N parameters on D tokens, a share r of which is the corpus measured::

    L(N, D, r) = E + A / N^alpha + B * r^eta / D^beta + C / (r + eps)^gamma

Following the paper, the law is fitted separately to the *domain* loss with r = the domain share
and to the *general* loss with r_g = 1 - r (the share of general data). ``fit_dcpt`` uses
scipy least squares (Huber loss, as in the paper) with log-parameterised A, B, C (they span orders
of magnitude), bounds that keep every term non-negative, and several seeded restarts, keeping the
best. ``recommend_ratio`` then picks the r that minimises the predicted domain loss while the
predicted general loss stays within ``tolerance`` (relative) of the base model's general loss —
given, or the law's r = 0 prediction (training on general data only).

A recommendation is only as good as the fit, so the plan says how far to trust it: it warns when r
lies outside the pilots' r range (extrapolation), when a fitted exponent is ~0 or at its bound (a
near-zero eta makes r^eta a step at r = 0, so "r = 0" can win by an artifact), when the fit's error
is as large as the loss difference r makes, and when near-best restarts or a bootstrap over the
pilot runs disagree on r; ``confidence`` reports those spreads.

CSV input: one row per pilot run, columns ``N, D, r, general_loss, domain_loss``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

PARAM_NAMES = ("E", "A", "alpha", "B", "eta", "beta", "C", "gamma")
#: Exponents (index in theta) a fit can make degenerate: ~0 turns a power into a step, the bound means
#: the data asked for more than the law's range.
EXPONENTS = {"alpha": 2, "eta": 4, "beta": 5, "gamma": 7}
NEAR_ZERO_EXPONENT = 0.02
#: Restarts whose squared error is within this factor of the best count as "near best".
NEAR_BEST = 1.05
#: Spreads of r (restarts, bootstrap 10-90%) above this are reported as an unstable recommendation.
R_SPREAD_WARN = 0.05
REQUIRED_COLUMNS = ("N", "D", "r", "general_loss", "domain_loss")
DEFAULT_EPSILON = 0.01


class PlannerError(ValueError):
    """Pilot losses that cannot be read or fitted; the message says which row or column."""


def dcpt_law(theta: np.ndarray, n: np.ndarray, d: np.ndarray, r: np.ndarray, eps: float) -> np.ndarray:
    """The law with ``theta = [E, log A, alpha, log B, eta, beta, log C, gamma]`` (logs keep A, B, C > 0)."""
    e, log_a, alpha, log_b, eta, beta, log_c, gamma = theta
    r = np.clip(r, 0.0, None)
    r_term = np.power(r, eta)
    return (e + np.exp(log_a - alpha * np.log(n)) + np.exp(log_b - beta * np.log(d)) * r_term
            + np.exp(log_c - gamma * np.log(r + eps)))


def _law_jacobian(theta: np.ndarray, n: np.ndarray, d: np.ndarray, r: np.ndarray, eps: float) -> np.ndarray:
    """Analytic derivatives of ``dcpt_law`` by each parameter (5-10x faster fits than finite differences)."""
    _, log_a, alpha, log_b, eta, beta, log_c, gamma = theta
    r = np.clip(r, 0.0, None)
    ta = np.exp(log_a - alpha * np.log(n))
    tb = np.exp(log_b - beta * np.log(d)) * np.power(r, eta)
    tc = np.exp(log_c - gamma * np.log(r + eps))
    log_r = np.log(np.where(r > 0, r, 1.0))
    return np.stack([np.ones_like(ta), ta, -np.log(n) * ta, tb, tb * log_r, -np.log(d) * tb, tc,
                     -np.log(r + eps) * tc], axis=1)


@dataclass
class Fit:
    """A fitted law and how well it fits the points it was fitted on."""

    theta: np.ndarray
    eps: float
    r2: float
    rmse: float
    n_points: int
    restarts: int
    cost: float
    x_range: tuple[float, float] | None = None  # the share (r or 1 - r) range of the pilots it was fitted on
    near_best: list[np.ndarray] = field(default_factory=list)  # thetas of restarts almost as good as the best

    def with_theta(self, theta: np.ndarray) -> Fit:
        return Fit(theta, self.eps, self.r2, self.rmse, self.n_points, self.restarts, self.cost, self.x_range)

    def predict(self, n: float | np.ndarray, d: float | np.ndarray, r: float | np.ndarray) -> np.ndarray:
        n, d, r = np.broadcast_arrays(np.asarray(n, float), np.asarray(d, float), np.asarray(r, float))
        return dcpt_law(self.theta, n, d, r, self.eps)

    def params(self) -> dict[str, float]:
        e, log_a, alpha, log_b, eta, beta, log_c, gamma = self.theta.tolist()
        values = (e, math.exp(log_a), alpha, math.exp(log_b), eta, beta, math.exp(log_c), gamma)
        return {k: float(f"{v:.6g}") for k, v in zip(PARAM_NAMES, values, strict=True)} | {"epsilon": self.eps}

    def summary(self) -> dict:
        return {"params": self.params(), "r2": round(self.r2, 6), "rmse": float(f"{self.rmse:.6g}"),
                "n_points": self.n_points, "restarts": self.restarts}


def fit_dcpt(n: np.ndarray, d: np.ndarray, r: np.ndarray, loss: np.ndarray, eps: float = DEFAULT_EPSILON,
             restarts: int = 24, seed: int = 0) -> Fit:
    """Least-squares fit of the law; the best of ``restarts`` random starts inside sensible ranges.

    Why restarts: the law is non-convex (exponents and coefficients trade off), and a single start
    often stops in a poor local minimum, which would move the recommended ratio.
    """
    n, d, r, loss = (np.asarray(x, dtype=float) for x in (n, d, r, loss))
    if len(loss) < len(PARAM_NAMES):
        raise PlannerError(f"{len(loss)} pilot runs for {len(PARAM_NAMES)} parameters; need at least "
                           f"{len(PARAM_NAMES)} (better 3x as many, varying N, D and r)")
    lmin = float(loss.min())
    lower, upper = _bounds(loss)
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(restarts):
        alpha, beta = rng.uniform(0.05, 0.8), rng.uniform(0.05, 0.8)
        # start each coefficient at a term size of ~ 0.01-1 loss units at the data's median N and D
        x0 = np.array([
            rng.uniform(0.5, 0.95) * lmin,
            math.log(rng.uniform(0.01, 1.0)) + alpha * math.log(float(np.median(n))),
            alpha,
            math.log(rng.uniform(0.001, 0.5)) + beta * math.log(float(np.median(d))),
            rng.uniform(0.1, 2.0),
            beta,
            math.log(rng.uniform(0.001, 0.3)),
            rng.uniform(0.05, 1.5),
        ])
        solved = _solve(x0, n, d, r, loss, eps)
        if solved is not None:
            found.append(solved)
    if not found:
        raise PlannerError("the fit failed from every start (are the losses finite and positive?)")
    found.sort(key=lambda x: x[1])
    theta, sse = found[0]
    sst = float(np.sum((loss - loss.mean()) ** 2))
    near = [t for t, e in found[1:] if e <= sse * NEAR_BEST + 1e-12][:8]
    return Fit(theta=theta, eps=eps, r2=1 - sse / sst if sst > 0 else 1.0, rmse=math.sqrt(sse / len(loss)),
               n_points=len(loss), restarts=restarts, cost=sse, x_range=(float(r.min()), float(r.max())),
               near_best=near)


def _bounds(loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parameter bounds that keep every term non-negative (E at most the smallest loss)."""
    lower = np.array([0.0, -20.0, 0.0, -20.0, 0.0, 0.0, -25.0, 0.0])
    upper = np.array([float(loss.min()), 60.0, 2.0, 60.0, 4.0, 2.0, 10.0, 4.0])
    return lower, upper


def _solve(x0: np.ndarray, n: np.ndarray, d: np.ndarray, r: np.ndarray, loss: np.ndarray,
           eps: float) -> tuple[np.ndarray, float] | None:
    """One least-squares run from ``x0``: (theta, squared error), or None when it fails."""
    lower, upper = _bounds(loss)
    x0 = np.clip(x0, lower + 1e-9, upper - 1e-9)
    scale = max(float(np.std(loss)), 1e-3)
    try:
        res = least_squares(lambda t: dcpt_law(t, n, d, r, eps) - loss, x0,
                            jac=lambda t: _law_jacobian(t, n, d, r, eps), bounds=(lower, upper),
                            loss="huber", f_scale=scale * 0.1, x_scale="jac", max_nfev=2000)
    except (ValueError, FloatingPointError):
        return None
    if not np.all(np.isfinite(res.fun)):
        return None
    return res.x, float(np.sum(res.fun ** 2))


@dataclass
class Plan:
    general: Fit
    domain: Fit
    target_n: float
    target_d: float
    tolerance: float
    base_general_loss: float
    base_from: str
    r: float
    general_loss: float
    domain_loss: float
    feasible: tuple[float, float] | None
    warnings: list[str] = field(default_factory=list)
    curve: list[dict] = field(default_factory=list)
    confidence: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "recommended_r": round(self.r, 4),
            "predicted": {"general_loss": round(self.general_loss, 6), "domain_loss": round(self.domain_loss, 6)},
            "target": {"N": self.target_n, "D": self.target_d},
            "constraint": {"base_general_loss": round(self.base_general_loss, 6), "base_from": self.base_from,
                           "tolerance": self.tolerance,
                           "max_general_loss": round(self.base_general_loss * (1 + self.tolerance), 6)},
            "feasible_r": [round(x, 4) for x in self.feasible] if self.feasible else None,
            "fits": {"general": self.general.summary(), "domain": self.domain.summary()},
            "confidence": self.confidence,
            "warnings": self.warnings,
            "curve": self.curve,
        }


def _choose_r(general: Fit, domain: Fit, target_n: float, target_d: float, tolerance: float,
              base_general_loss: float | None, grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int, bool]:
    """(r grid, general losses, domain losses, base, index of the best feasible r, whether any r is feasible)."""
    rs = np.linspace(0.0, 1.0, grid)
    gen = general.predict(target_n, target_d, 1.0 - rs)
    dom = domain.predict(target_n, target_d, rs)
    base = float(base_general_loss) if base_general_loss is not None else float(gen[0])
    ok = gen <= base * (1 + tolerance) + 1e-12
    if not ok.any():
        return rs, gen, dom, base, 0, False
    idx = np.flatnonzero(ok)
    return rs, gen, dom, base, int(idx[np.argmin(dom[idx])]), True


def recommend_ratio(general: Fit, domain: Fit, target_n: float, target_d: float, tolerance: float = 0.01,
                    base_general_loss: float | None = None, grid: int = 2001) -> Plan:
    """The domain share r in [0, 1] with the lowest predicted domain loss whose predicted general loss is
    at most ``base * (1 + tolerance)``; base = ``base_general_loss`` or the general law at r = 0."""
    rs, gen, dom, base, i, any_ok = _choose_r(general, domain, target_n, target_d, tolerance, base_general_loss,
                                              grid)
    base_from = "given" if base_general_loss is not None else "law at r=0"
    warnings = []
    feasible = None
    if not any_ok:
        warnings.append(f"no r keeps the general loss within {tolerance:.2%} of {base:.4f} (best {gen.min():.4f}); "
                        "recommending r = 0")
    else:
        ok = rs[gen <= base * (1 + tolerance) + 1e-12]
        feasible = (float(ok.min()), float(ok.max()))
    for name, fit in (("general", general), ("domain", domain)):
        if fit.r2 < 0.9:
            warnings.append(f"the {name} fit is poor (R² {fit.r2:.3f}); add pilot runs before trusting r")
        warnings += _exponent_warnings(name, fit)
    warnings += _range_warnings(float(rs[i]), general, domain)
    gain = float(dom[gen <= base * (1 + tolerance) + 1e-12].max() - dom[i]) if any_ok else 0.0
    if any_ok and gain > 0 and domain.rmse > gain / 2:
        warnings.append(f"the domain fit's RMSE ({domain.rmse:.4g}) is as large as the domain-loss gain the choice "
                        f"of r makes ({gain:.4g}): r is decided by noise; add pilot runs or repeat them")
    near = [_choose_r(g, d, target_n, target_d, tolerance, base_general_loss, 401)
            for g, d in _near_best_pairs(general, domain)]
    near_r = [float(x[0][x[4]]) for x in near] + [float(rs[i])]
    confidence = {"rmse": {"general": float(f"{general.rmse:.4g}"), "domain": float(f"{domain.rmse:.4g}")},
                  "r_near_best_restarts": [round(min(near_r), 4), round(max(near_r), 4)],
                  "near_best_fits": len(near)}
    if max(near_r) - min(near_r) > R_SPREAD_WARN:
        warnings.append(f"restarts almost as good as the best fit recommend r from {min(near_r):.3f} to "
                        f"{max(near_r):.3f}: the fit is not identified; add pilot runs varying r")
    step = max(1, (grid - 1) // 20)
    curve = [{"r": round(float(rs[j]), 4), "general_loss": round(float(gen[j]), 6),
              "domain_loss": round(float(dom[j]), 6)} for j in range(0, grid, step)]
    return Plan(general, domain, float(target_n), float(target_d), tolerance, base, base_from, float(rs[i]),
                float(gen[i]), float(dom[i]), feasible, warnings, curve, confidence)


def _exponent_warnings(name: str, fit: Fit) -> list[str]:
    """A fitted exponent at ~0 or at its bound: the law degenerates and its r predictions with it."""
    out = []
    upper = _bounds(np.array([1.0]))[1]
    for param, j in EXPONENTS.items():
        value = float(fit.theta[j])
        if param in ("eta", "gamma") and value < NEAR_ZERO_EXPONENT:
            out.append(f"the {name} fit's exponent {param} = {value:.3g} is ~0: its r term becomes a step at r = 0 "
                       "(r = 0 and r = 0.001 differ by the whole term), so predictions near r = 0 are artifacts")
        elif value > upper[j] - 1e-3:
            out.append(f"the {name} fit's exponent {param} = {value:.3g} sits at its bound {upper[j]:g}: the law "
                       "does not describe these pilots; check them")
    return out


def _range_warnings(r: float, general: Fit, domain: Fit) -> list[str]:
    """r outside the domain shares the pilots ran at: the law is extrapolated there."""
    ranges = [domain.x_range] if domain.x_range else []
    if general.x_range:
        ranges.append((1.0 - general.x_range[1], 1.0 - general.x_range[0]))
    if not ranges:
        return []
    lo, hi = max(x[0] for x in ranges), min(x[1] for x in ranges)
    if lo - 1e-9 <= r <= hi + 1e-9:
        return []
    return [f"recommended r = {r:.3f} is outside the pilots' r range [{lo:.3g}, {hi:.3g}]: the law is "
            f"extrapolated there; run pilots near r = {r:.2f} before trusting it"]


def _near_best_pairs(general: Fit, domain: Fit) -> list[tuple[Fit, Fit]]:
    """The best fit of one law with each near-best restart of the other (and of both at once)."""
    pairs = [(general.with_theta(t), domain) for t in general.near_best]
    pairs += [(general, domain.with_theta(t)) for t in domain.near_best]
    return pairs


def bootstrap_r(losses: dict[str, np.ndarray], general: Fit, domain: Fit, target_n: float, target_d: float,
                tolerance: float, base_general_loss: float | None, samples: int, seed: int) -> list[float]:
    """r recommended by fits to ``samples`` resamplings of the pilot runs (warm-started at the best fit).

    Why: restarts only show how well the optimiser is pinned down; resampling the pilots shows how much
    the recommendation depends on which runs happened to be made (and on their noise).
    """
    rng = np.random.default_rng(seed)
    n, d, r = losses["N"], losses["D"], losses["r"]
    out = []
    for _ in range(samples):
        idx = rng.integers(0, len(r), len(r))
        g = _solve(general.theta, n[idx], d[idx], 1.0 - r[idx], losses["general_loss"][idx], general.eps)
        m = _solve(domain.theta, n[idx], d[idx], r[idx], losses["domain_loss"][idx], domain.eps)
        if g is None or m is None:
            continue
        rs, _, _, _, i, _ = _choose_r(general.with_theta(g[0]), domain.with_theta(m[0]), target_n, target_d,
                                      tolerance, base_general_loss, 401)
        out.append(float(rs[i]))
    return out


def read_losses(path: str) -> dict[str, np.ndarray]:
    """The pilot CSV as float arrays; fails naming the missing column or the bad row."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise PlannerError(f"losses CSV not found: {path}") from None
    if not rows:
        raise PlannerError(f"{path}: no rows")
    missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
    if missing:
        raise PlannerError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)} "
                           f"(found {', '.join(rows[0])})")
    out = {c: np.zeros(len(rows)) for c in REQUIRED_COLUMNS}
    for i, row in enumerate(rows, start=2):
        for c in REQUIRED_COLUMNS:
            try:
                out[c][i - 2] = float(row[c])
            except (TypeError, ValueError):
                raise PlannerError(f"{path}: line {i}: column {c} is {row[c]!r}, expected a number") from None
    if np.any(out["N"] <= 0) or np.any(out["D"] <= 0):
        raise PlannerError(f"{path}: N and D must be positive")
    if np.any((out["r"] < 0) | (out["r"] > 1)):
        raise PlannerError(f"{path}: r is the domain share of the mixture, between 0 and 1")
    return out


def plan_mixture(losses: dict[str, np.ndarray], tolerance: float = 0.01, base_general_loss: float | None = None,
                 target_n: float | None = None, target_d: float | None = None, eps: float = DEFAULT_EPSILON,
                 restarts: int = 24, seed: int = 0, bootstrap: int = 20) -> Plan:
    """Fit both laws and recommend r for the target (default: the largest N and D of the pilots), with
    ``bootstrap`` resampled refits to say how stable r is (0: skip)."""
    n, d, r = losses["N"], losses["D"], losses["r"]
    general = fit_dcpt(n, d, 1.0 - r, losses["general_loss"], eps, restarts, seed)
    domain = fit_dcpt(n, d, r, losses["domain_loss"], eps, restarts, seed + 1)
    target_n, target_d = target_n or float(n.max()), target_d or float(d.max())
    plan = recommend_ratio(general, domain, target_n, target_d, tolerance, base_general_loss)
    boot = bootstrap_r(losses, general, domain, target_n, target_d, tolerance, base_general_loss, bootstrap,
                       seed + 2) if bootstrap else []
    if boot:
        p10, p50, p90 = (float(x) for x in np.percentile(boot, [10, 50, 90]))
        plan.confidence["r_bootstrap"] = {"samples": len(boot), "p10": round(p10, 4), "median": round(p50, 4),
                                          "p90": round(p90, 4)}
        if p90 - p10 > 2 * R_SPREAD_WARN:
            plan.warnings.append(f"refits to resampled pilot runs recommend r from {p10:.3f} to {p90:.3f} (10-90%): "
                                 "the recommendation depends on which pilots were run; add or repeat pilot runs")
    return plan


def format_plan(plan: Plan) -> str:
    """A short human-readable report of a plan."""
    p = plan.to_dict()
    lines = [
        f"recommended domain share r = {p['recommended_r']:.3f} for N={plan.target_n:.3g}, D={plan.target_d:.3g}",
        f"  predicted general loss {p['predicted']['general_loss']:.4f} (limit {p['constraint']['max_general_loss']:.4f}"
        f" = base {p['constraint']['base_general_loss']:.4f} ({plan.base_from}) + {plan.tolerance:.2%})",
        f"  predicted domain loss  {p['predicted']['domain_loss']:.4f}",
        f"  feasible r: {p['feasible_r']}",
    ]
    for name in ("general", "domain"):
        f = p["fits"][name]
        lines.append(f"  {name} fit: R² {f['r2']:.4f}, RMSE {f['rmse']:.4g} on {f['n_points']} runs; "
                     + ", ".join(f"{k}={v:.4g}" for k, v in f["params"].items()))
    c = plan.confidence
    if c:
        line = (f"  confidence: r {c['r_near_best_restarts'][0]:.3f}-{c['r_near_best_restarts'][1]:.3f} over the "
                f"best restarts ({c['near_best_fits']} near-best fits)")
        if "r_bootstrap" in c:
            b = c["r_bootstrap"]
            line += f"; bootstrap r {b['p10']:.3f}-{b['p90']:.3f} (10-90%, {b['samples']} resamples of the pilots)"
        lines.append(line)
    lines += [f"  warning: {w}" for w in plan.warnings]
    return "\n".join(lines)
