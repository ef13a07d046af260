"""Statistics of the bake-off: paired confidence intervals over scenes × seeds.

The unit of evidence is one held-out *scene* under one training *seed*. A measure of a method is a
matrix ``(n_scenes, n_seeds)`` (images of one scene averaged first, so a scene with two photos
counts once). Both are random factors: another set of scenes, or another seed, would give other
numbers. The confidence intervals therefore come from a **two-way bootstrap**: each replicate
draws scenes with replacement and, independently, seeds with replacement, and takes the mean over
the drawn grid (the same draws for both methods of a pair, so the comparison stays paired: same
scene, same seed = same batches in the same order). With three seeds the seed draw is coarse, and
the interval honestly wider than a scenes-only bootstrap. Next to it, the **Wilcoxon signed-rank
test** over scenes (each scene's difference averaged over seeds) gives a p-value that does not
rely on resampling.

A sentence "A beats B on X" is allowed only where the 95 % interval of the difference excludes
zero in A's favour (:func:`verdict`); otherwise the report says "no difference shown".
"""

from __future__ import annotations

import numpy as np

N_BOOT = 4000
LEVEL = 0.95


def as_grid(values) -> np.ndarray:
    """A measure as a float ``(n_scenes, n_seeds)`` matrix; a 1-D input is one seed (a deterministic
    row such as bicubic). Refuses NaN/inf, which would silently poison every bootstrap mean."""
    m = np.asarray(values, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"a measure must be a non-empty (scenes, seeds) matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("a measure holds NaN or inf; the bootstrap needs finite values")
    return m


def resample_weights(n_rows: int, n_cols: int, n_boot: int = N_BOOT, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two-way bootstrap draws as counts: ``(n_boot, n_rows)`` and ``(n_boot, n_cols)``, each row of
    counts summing to ``n_rows`` / ``n_cols`` (how often each scene / seed was drawn)."""
    rng = np.random.default_rng([seed, 7919])
    rows = rng.multinomial(n_rows, np.full(n_rows, 1.0 / n_rows), size=n_boot)
    cols = rng.multinomial(n_cols, np.full(n_cols, 1.0 / n_cols), size=n_boot)
    return rows.astype(np.float64), cols.astype(np.float64)


def boot_means(m: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``(n_boot,)`` means of ``m`` (scenes, seeds) over each replicate's drawn grid. A one-seed matrix
    ignores the seed draws (its value does not depend on a seed)."""
    rows, cols = weights
    m = as_grid(m)
    if m.shape[1] == 1:
        return rows @ m[:, 0] / m.shape[0]
    if cols.shape[1] != m.shape[1] or rows.shape[1] != m.shape[0]:
        raise ValueError(f"bootstrap draws for {rows.shape[1]}×{cols.shape[1]}, matrix {m.shape}")
    return np.einsum("br,rc,bc->b", rows, m, cols) / (m.shape[0] * m.shape[1])


def _paired(a, b) -> np.ndarray:
    """a − b per scene and seed; a one-seed side is broadcast over the other's seeds."""
    a, b = as_grid(a), as_grid(b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"paired measures need the same scenes: {a.shape[0]} vs {b.shape[0]} rows")
    if a.shape[1] != b.shape[1] and 1 not in (a.shape[1], b.shape[1]):
        raise ValueError(f"paired measures need the same seeds (or one side seedless): {a.shape} vs {b.shape}")
    return a - b


def percentile_ci(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def mean_ci(values, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> dict:
    """Mean of a (scenes, seeds) measure with its two-way bootstrap interval."""
    m = as_grid(values)
    samples = boot_means(m, resample_weights(*m.shape, n_boot, seed))
    lo, hi = percentile_ci(samples, level)
    return {"mean": float(m.mean()), "ci": [lo, hi], "n_scenes": m.shape[0], "n_seeds": m.shape[1]}


def wilcoxon_p(diff_per_scene: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of per-scene differences (None below 5 scenes, or when
    every difference is zero)."""
    from scipy.stats import wilcoxon

    d = np.asarray(diff_per_scene, dtype=np.float64)
    if d.size < 5 or not np.any(d != 0):
        return None
    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_difference(a, b, better: str, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> dict:
    """A minus B on one measure, paired by scene and seed: mean Δ, its two-way bootstrap interval,
    the Wilcoxon p over scenes, and the verdict (``better`` = "higher" or "lower")."""
    d = _paired(a, b)
    samples = boot_means(d, resample_weights(*d.shape, n_boot, seed))
    lo, hi = percentile_ci(samples, level)
    out = {
        "delta": float(d.mean()),
        "ci": [lo, hi],
        "p_wilcoxon": wilcoxon_p(d.mean(axis=1)),
        "n_scenes": d.shape[0],
        "n_seeds": d.shape[1],
    }
    out["verdict"] = verdict(lo, hi, better)
    return out


def verdict(lo: float, hi: float, better: str) -> str:
    """ "A better" / "B better" when the interval of A − B excludes zero, else "no difference shown"."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    if lo > 0 or hi < 0:
        a_up = lo > 0
        return "A better" if a_up == (better == "higher") else "B better"
    return "no difference shown"
