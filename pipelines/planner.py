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

CSV input: one row per pilot run, columns ``N, D, r, general_loss, domain_loss``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

PARAM_NAMES = ("E", "A", "alpha", "B", "eta", "beta", "C", "gamma")
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
    lower = np.array([0.0, -20.0, 0.0, -20.0, 0.0, 0.0, -25.0, 0.0])
    upper = np.array([lmin, 60.0, 2.0, 60.0, 4.0, 2.0, 10.0, 4.0])
    rng = np.random.default_rng(seed)
    scale = max(float(np.std(loss)), 1e-3)

    def residuals(theta: np.ndarray) -> np.ndarray:
        return dcpt_law(theta, n, d, r, eps) - loss

    best = None
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
        x0 = np.clip(x0, lower + 1e-9, upper - 1e-9)
        try:
            res = least_squares(residuals, x0, jac=lambda t: _law_jacobian(t, n, d, r, eps), bounds=(lower, upper),
                                loss="huber", f_scale=scale * 0.1, x_scale="jac", max_nfev=2000)
        except (ValueError, FloatingPointError):
            continue
        if not np.all(np.isfinite(res.fun)):
            continue
        sse = float(np.sum(res.fun ** 2))
        if best is None or sse < best[1]:
            best = (res.x, sse)
    if best is None:
        raise PlannerError("the fit failed from every start (are the losses finite and positive?)")
    theta, sse = best
    sst = float(np.sum((loss - loss.mean()) ** 2))
    return Fit(theta=theta, eps=eps, r2=1 - sse / sst if sst > 0 else 1.0, rmse=math.sqrt(sse / len(loss)),
               n_points=len(loss), restarts=restarts, cost=sse)


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
            "warnings": self.warnings,
            "curve": self.curve,
        }


def recommend_ratio(general: Fit, domain: Fit, target_n: float, target_d: float, tolerance: float = 0.01,
                    base_general_loss: float | None = None, grid: int = 2001) -> Plan:
    """The domain share r in [0, 1] with the lowest predicted domain loss whose predicted general loss is
    at most ``base * (1 + tolerance)``; base = ``base_general_loss`` or the general law at r = 0."""
    rs = np.linspace(0.0, 1.0, grid)
    gen = general.predict(target_n, target_d, 1.0 - rs)
    dom = domain.predict(target_n, target_d, rs)
    base_from = "given" if base_general_loss is not None else "law at r=0"
    base = float(base_general_loss) if base_general_loss is not None else float(gen[0])
    limit = base * (1 + tolerance)
    ok = gen <= limit + 1e-12
    warnings = []
    if not ok.any():
        i = 0
        warnings.append(f"no r keeps the general loss within {tolerance:.2%} of {base:.4f} (best {gen.min():.4f}); "
                        "recommending r = 0")
        feasible = None
    else:
        idx = np.flatnonzero(ok)
        i = int(idx[np.argmin(dom[idx])])
        feasible = (float(rs[idx].min()), float(rs[idx].max()))
    for name, fit in (("general", general), ("domain", domain)):
        if fit.r2 < 0.9:
            warnings.append(f"the {name} fit is poor (R² {fit.r2:.3f}); add pilot runs before trusting r")
    step = max(1, (grid - 1) // 20)
    curve = [{"r": round(float(rs[j]), 4), "general_loss": round(float(gen[j]), 6),
              "domain_loss": round(float(dom[j]), 6)} for j in range(0, grid, step)]
    return Plan(general, domain, float(target_n), float(target_d), tolerance, base, base_from, float(rs[i]),
                float(gen[i]), float(dom[i]), feasible, warnings, curve)


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
                 restarts: int = 24, seed: int = 0) -> Plan:
    """Fit both laws and recommend r for the target (default: the largest N and D of the pilots)."""
    n, d, r = losses["N"], losses["D"], losses["r"]
    general = fit_dcpt(n, d, 1.0 - r, losses["general_loss"], eps, restarts, seed)
    domain = fit_dcpt(n, d, r, losses["domain_loss"], eps, restarts, seed + 1)
    return recommend_ratio(general, domain, target_n or float(n.max()), target_d or float(d.max()), tolerance,
                           base_general_loss)


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
    lines += [f"  warning: {w}" for w in plan.warnings]
    return "\n".join(lines)
