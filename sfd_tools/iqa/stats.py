"""IQA correlation statistics: SROCC, KRCC, PLCC raw and after the 4/5-parameter logistic fit.

The logistic fits are the standard ones of the IQA literature (VQEG FR-TV Phase II):

    4-parameter: f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2
    5-parameter: f(x) = b1 * (0.5 - 1 / (1 + exp(b2 * (x - b3)))) + b4 * x + b5

fitted with ``scipy.optimize.curve_fit`` from objective score x to MOS; PLCC (and RMSE) are then
computed between f(x) and MOS.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
from scipy import optimize, stats


def logistic4(x, b1, b2, b3, b4):
    return (b1 - b2) / (1.0 + np.exp(-(x - b3) / np.abs(b4))) + b2


def logistic5(x, b1, b2, b3, b4, b5):
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(b2 * (x - b3)))) + b4 * x + b5


def fit_logistic(x, y, params: int = 4) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray] | None:
    """Fit the 4- or 5-parameter logistic from x (scores) to y (MOS) -> (f, parameters), None if it fails."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < params + 1 or np.ptp(x) == 0:
        return None
    sx = float(np.std(x))
    rising = stats.spearmanr(x, y)[0] >= 0
    if params == 4:
        fn = logistic4
        lo, hi = float(np.min(y)), float(np.max(y))
        p0 = [hi, lo, float(np.mean(x)), sx] if rising else [lo, hi, float(np.mean(x)), sx]
    elif params == 5:
        fn = logistic5
        p0 = [float(np.ptp(y)), (1.0 if rising else -1.0) / sx, float(np.mean(x)), 0.0, float(np.mean(y))]
    else:
        raise ValueError(f"logistic fit: params must be 4 or 5, got {params}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow in exp during the search; covariance warnings
        try:
            popt, _ = optimize.curve_fit(fn, x, y, p0=p0, maxfev=20000)
        except (RuntimeError, ValueError, optimize.OptimizeWarning):
            return None
    if not np.all(np.isfinite(popt)):
        return None
    return (lambda v: fn(np.asarray(v, np.float64), *popt)), popt


def _pearson(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(stats.pearsonr(a, b)[0])


def correlations(pred, mos, logistic: tuple[int, ...] = (4,)) -> dict:
    """Correlation of predictions (higher = better) with MOS (higher = better).

    Returns {n, srocc, krcc, plcc_raw, plcc_logistic<k>, rmse_logistic<k>, logistic<k>_params} for each
    k in ``logistic``; NaN where undefined (fewer than 3 pairs, constant input, failed fit). Pairs with
    a NaN prediction or MOS are left out.
    """
    pred, mos = np.asarray(pred, np.float64), np.asarray(mos, np.float64)
    keep = np.isfinite(pred) & np.isfinite(mos)
    pred, mos = pred[keep], mos[keep]
    out: dict = {"n": int(len(pred))}
    if len(pred) < 3 or np.ptp(pred) == 0 or np.ptp(mos) == 0:
        out.update(srocc=math.nan, krcc=math.nan, plcc_raw=math.nan)
    else:
        out["srocc"] = float(stats.spearmanr(pred, mos)[0])
        out["krcc"] = float(stats.kendalltau(pred, mos)[0])
        out["plcc_raw"] = _pearson(pred, mos)
    for k in logistic:
        fit = fit_logistic(pred, mos, k)
        if fit is None:
            out[f"plcc_logistic{k}"] = out[f"rmse_logistic{k}"] = math.nan
            out[f"logistic{k}_params"] = None
            continue
        fn, popt = fit
        fitted = fn(pred)
        out[f"plcc_logistic{k}"] = _pearson(fitted, mos)
        out[f"rmse_logistic{k}"] = float(np.sqrt(np.mean((fitted - mos) ** 2)))
        out[f"logistic{k}_params"] = [float(p) for p in popt]
    return out
