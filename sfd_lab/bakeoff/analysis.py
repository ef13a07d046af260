"""The bake-off's numbers from its task results: per-method measures with intervals, the learning-rate
choice, who learned, paired comparisons, the matched-PSNR frontier and the sanity flags.

Methods are named ``<contestant>@<GAN weight>`` (``sfd@0.1``, ``l1@0``) or by their reference row
(``hr``, ``bicubic``, ``bicubic_noise4``, ..., ``stage1``). Every measure of a method is a matrix
(held-out scenes × seeds) — references have one column — and every interval comes from
sfd_lab.bakeoff.stats (two-way bootstrap over scenes and seeds, paired where two methods are compared).
"""

from __future__ import annotations

import numpy as np

from sfd_lab.bakeoff import stats
from sfd_lab.bakeoff.contestants import CONTESTANTS, LEARNED_ACCURACY, LEARNED_PROBES
from sfd_lab.bakeoff.data import SANITY_ROWS
from sfd_lab.bakeoff.evaluate import MEASURES, PERCEPTUAL, per_scene

REFERENCES = ("hr", *SANITY_ROWS, "stage1")


def method_id(key: str, weight: float) -> str:
    return f"{key}@{weight:g}"


def run_id(key: str, w: float, seed: int) -> str:
    """A fine-tuning run's task name part: contestant, GAN weight, seed."""
    return f"{key}-w{w:g}-s{seed}"


def lrsel_id(key: str, lr: float) -> str:
    """The task of a learning-rate candidate (first seed, middle GAN weight, validation measures)."""
    return f"lrsel-{key}-lr{lr:g}"


def reused_run(s, key: str, w: float, seed: int) -> bool:
    """The run of the chosen learning rate at the middle weight and first seed is the lr-choice run
    itself (trained identically): it is not trained twice."""
    return CONTESTANTS[key].has_d and w == s.mid_weight and seed == s.seeds[0]


def choose_lr(val_runs: dict[float, dict]) -> dict:
    """The learning rate whose run looks most real on the validation photos: lowest realism-test
    accuracy (ties: higher validation PSNR). ``val_runs``: {lr: job_train result with "val"}."""
    rows = {}
    for lr, run in val_runs.items():
        per = run["val"]["per_image"].values()
        rows[lr] = {
            "realism": run["val"]["realism"]["accuracy"],
            "realism_fold_std": run["val"]["realism"]["fold_std"],
            "psnr": float(np.mean([r["psnr"] for r in per])),
            "niqe": float(np.mean([r["niqe"] for r in per])),
            "d_acc_max": run.get("d_acc_max"),
            "d_acc_final": run.get("d_acc_final"),
        }
    chosen = min(rows, key=lambda lr: (round(rows[lr]["realism"], 6), -rows[lr]["psnr"]))
    return {"chosen": chosen, "candidates": {f"{lr:g}": v for lr, v in rows.items()}}


def learned(runs: list[dict]) -> dict:
    """Did the discriminator learn? A seed counts when its accuracy on the validation probe exceeds
    LEARNED_ACCURACY at LEARNED_PROBES or more probes; "did not learn" when no seed does."""
    above = [sum(row["d_acc"] > LEARNED_ACCURACY for row in r["curve"]) for r in runs]
    n = sum(a >= LEARNED_PROBES for a in above)
    label = "did not learn" if n == 0 else ("learned" if n == len(runs) else f"learned on {n}/{len(runs)} seeds")
    return {
        "label": label,
        "seeds_learned": n,
        "probes_above": above,
        "d_acc_max": [r["d_acc_max"] for r in runs],
        "d_acc_final": [r["d_acc_final"] for r in runs],
        "d_acc_real_final": [r["curve"][-1]["d_acc_real"] for r in runs],
        "d_acc_fake_final": [r["curve"][-1]["d_acc_fake"] for r in runs],
    }


def measure_grid(per_seed_images: list[dict], realism_per_seed: list[dict] | None, scenes: list[str]) -> dict:
    """{measure: (n_scenes, n_seeds) matrix} of one method (``per_seed_images``: per seed the
    per-image measures; ``realism_per_seed``: per seed {photo: accuracy})."""
    out = {}
    first = per_seed_images[0]
    for m in ("psnr", "ssim", "niqe"):
        if m in next(iter(first.values())):
            out[m] = np.stack([per_scene(p, m, scenes) for p in per_seed_images], axis=1)
    if realism_per_seed is not None:
        cols = []
        for p, acc in zip(per_seed_images, realism_per_seed):
            rows = {n: {"scene": r["scene"], "realism": acc[n]} for n, r in p.items()}
            cols.append(per_scene(rows, "realism", scenes))
        out["realism"] = np.stack(cols, axis=1)
    return out


def summarise(grids: dict[str, dict]) -> dict:
    """Per method and measure: mean, 95 % interval, per-seed means."""
    out = {}
    for method, grid in grids.items():
        out[method] = {}
        for m, g in grid.items():
            out[method][m] = {**stats.mean_ci(g), "per_seed": [float(x) for x in g.mean(axis=0)]}
    return out


def compare(grids: dict, a: str, b: str, measures=tuple(MEASURES)) -> dict:
    """A − B per measure, paired by scene and seed (stats.paired_difference)."""
    out = {}
    for m in measures:
        if m in grids.get(a, {}) and m in grids.get(b, {}):
            out[m] = stats.paired_difference(grids[a][m], grids[b][m], MEASURES[m][1])
    return {"a": a, "b": b, "measures": out}


# feat_norm channel against rms, everything else equal (the Feat-D design study's winner on held-out photos)
DESIGN_PAIRS = (("sfd_channel", "sfd"), ("feat_d_channel", "feat_d"))


def full_sfd(key: str) -> bool:
    """An SFD contestant with both heads on the quality-aware CLIP (whatever its Feat-D normalisation)."""
    c = CONTESTANTS[key]
    return c.kind == "sfd" and c.use_feat and c.use_text and c.clip == "quality"


def comparisons(grids: dict, s) -> list[dict]:
    """The report's "A beats B" questions: each GAN method against the L1 control (did the GAN term
    do anything beyond L1 steps?), each full SFD (``sfd``, ``sfd_channel``) against every stock
    discriminator and against its own ablations (the same Feat-D normalisation) at the middle weight,
    Feat-D normalised per channel against RMS (:data:`DESIGN_PAIRS`), and SFD against its start."""
    mid = s.mid_weight
    out = []
    control = method_id("l1", 0.0)
    for key in s.contestants:
        if key == "l1":
            continue
        for w in s.weights_of(key):
            if control in grids:
                out.append({"question": "GAN term vs L1 steps alone", **compare(grids, method_id(key, w), control)})
    heads = [k for k in s.contestants if full_sfd(k)]
    for head in heads:
        a = method_id(head, mid)
        if a not in grids:
            continue
        for key in s.contestants:
            c = CONTESTANTS[key]
            if key == "l1" or full_sfd(key):
                continue
            if c.kind != "sfd":
                out.append({"question": "SFD vs a stock discriminator", **compare(grids, a, method_id(key, mid))})
            elif not c.use_feat or c.feat_norm == CONTESTANTS[head].feat_norm:
                out.append({"question": "ablation", **compare(grids, a, method_id(key, mid))})
    for a, b in DESIGN_PAIRS:
        if method_id(a, mid) in grids and method_id(b, mid) in grids:
            out.append({"question": "Feat-D design", **compare(grids, method_id(a, mid), method_id(b, mid))})
    for head in heads:
        if method_id(head, mid) in grids and "stage1" in grids:
            out.append({"question": "fine-tuning vs its start", **compare(grids, method_id(head, mid), "stage1")})
    return out


# -- frontier ----------------------------------------------------------------------------------------------
def _overlap(pa: list, pb: list) -> tuple[float, float]:
    """The PSNR range two curves share (lo > hi: none)."""
    return max(min(p[0] for p in pa), min(p[0] for p in pb)), min(max(p[0] for p in pa), max(p[0] for p in pb))


def _interp(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear value at PSNR ``x`` of (PSNR, y) points (sorted by PSNR)."""
    pts = sorted(points)
    return float(np.interp(x, [p[0] for p in pts], [p[1] for p in pts]))


def _matched(pa: list, pb: list, frac: float) -> float:
    """A − B at the PSNR a fraction ``frac`` of the way through the curves' shared range (NaN if none)."""
    lo, hi = _overlap(pa, pb)
    if lo > hi:
        return float("nan")
    x = lo + frac * (hi - lo)
    return _interp(pa, x) - _interp(pb, x)


def frontier(grids: dict, s, measure: str, n_boot: int = stats.N_BOOT) -> dict:
    """Each frontier contestant's perception–distortion curve (PSNR, ``measure``) over its GAN weights,
    the L1 control as the common weight-0 end, and each full SFD against each other curve (and Feat-D
    normalised per channel against RMS) at matched PSNR: the
    difference of the linearly interpolated ``measure`` at SFD's own PSNRs inside the range both curves
    share (else the middle of that range). Interval: the two-way bootstrap (the same scene/seed draws
    for every curve), each replicate compared at the same relative place in its own shared range (a
    fixed PSNR would fall outside a replicate's range whenever it sits at a curve's end)."""
    keys = [k for k in s.frontier if all(method_id(k, w) in grids for w in s.gan_weights)]
    anchor = method_id("l1", 0.0) if method_id("l1", 0.0) in grids else None
    members = {k: ([anchor] if anchor else []) + [method_id(k, w) for w in s.gan_weights] for k in keys}
    if not keys:
        return {"measure": measure, "curves": {}, "matched": []}
    draws = stats.resample_weights(*grids[members[keys[0]][-1]]["psnr"].shape, n_boot, seed=1)

    def points(k: str, boot: bool):
        if boot:
            return [(stats.boot_means(grids[m]["psnr"], draws), stats.boot_means(grids[m][measure], draws)) for m in
                    members[k]]  # fmt: skip
        return [(float(grids[m]["psnr"].mean()), float(grids[m][measure].mean())) for m in members[k]]

    curves = {k: {"methods": members[k], "points": points(k, False)} for k in keys}
    matched = []
    heads = [k for k in keys if full_sfd(k)] or keys[:1]
    pairs = [(a, b) for a in heads for b in keys if b != a and b not in heads]
    pairs += [(a, b) for a, b in DESIGN_PAIRS if a in keys and b in keys]
    for a, b in pairs:
        pa, pb = curves[a]["points"], curves[b]["points"]
        lo, hi = _overlap(pa, pb)
        if lo > hi:
            matched.append({"a": a, "b": b, "overlap": None})
            continue
        own = sorted({p[0] for p in pa[1 if anchor else 0 :] if lo <= p[0] <= hi})
        fracs = [(x - lo) / (hi - lo) if hi > lo else 0.5 for x in own] or [0.5]
        ba, bb = points(a, True), points(b, True)
        for frac in fracs:
            diffs = np.array(
                [
                    _matched([(p[0][i], p[1][i]) for p in ba], [(p[0][i], p[1][i]) for p in bb], frac)
                    for i in range(n_boot)
                ]
            )
            ok = np.isfinite(diffs)
            enough = ok.sum() >= 0.9 * n_boot  # replicates whose curves still share a range
            ci = stats.percentile_ci(diffs[ok]) if enough else (float("nan"), float("nan"))
            matched.append(
                {
                    "a": a,
                    "b": b,
                    "psnr": lo + frac * (hi - lo),
                    "overlap": [lo, hi],
                    "delta": _matched(pa, pb, frac),
                    "ci": list(ci),
                    "boot_shared": float(ok.mean()),
                    "verdict": stats.verdict(*ci, MEASURES[measure][1]) if enough else "not comparable",
                }
            )
    return {"measure": measure, "curves": curves, "matched": matched}


# -- sanity flags -------------------------------------------------------------------------------------------
def sanity_flags(summary: dict, trained: list[str]) -> dict:
    """Per measure: the sanity rows it ranks above at least one trained method (by mean), and those
    methods. A flagged perceptual measure cannot carry a conclusion on its own; for PSNR/SSIM (full-
    reference distortion measures) a flag is expected (the perception–distortion trade-off)."""
    out = {}
    for m, (_, better, _) in MEASURES.items():
        rows = {}
        for row in SANITY_ROWS:
            if m not in summary.get(row, {}):
                continue
            v = summary[row][m]["mean"]
            beaten = [t for t in trained if m in summary[t] and (v > summary[t][m]["mean"]) == (better == "higher")]
            if beaten:
                rows[row] = beaten
        out[m] = {"flagged": bool(rows), "rows": rows, "perceptual": m in PERCEPTUAL}
    return out
