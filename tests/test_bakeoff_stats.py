"""The bake-off's independent realism test (a classifier two-sample test) and its paired statistics."""

from __future__ import annotations

import numpy as np
import pytest

from sfd_lab.bakeoff import stats
from sfd_lab.bakeoff.realism import assign_folds, patch_cells, realism_test

SCENES = ("astronaut", "coffee", "rocket", "chelsea", "motorcycle_right", "ihc")
FAST = {"patch": 32, "patches_per_image": 40, "folds": 3, "steps": 80, "batch": 32, "width": 8}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the critics are small, and a second thread only spins on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hr() -> dict:
    from sfd_utils.photos import load_photo

    # a 192² centre of each photo: six scenes, small enough for a test
    out = {}
    for name in SCENES:
        img = load_photo(name)
        t, s = (img.shape[0] - 192) // 2, (img.shape[1] - 192) // 2
        out[name] = [np.ascontiguousarray(img[t : t + 192, s : s + 192])]
    return out


def _map(hr: dict, fn) -> dict:
    return {k: [fn(im) for im in v] for k, v in hr.items()}


def test_identical_images_are_exactly_indistinguishable(hr):
    r = realism_test(hr, _map(hr, np.copy), **FAST)
    assert r["accuracy"] == 0.5 and r["fold_accuracy"] == [0.5] * 3 and r["ci95"] == [0.5, 0.5]
    assert sorted(s for fold in r["folds"] for s in fold) == sorted(SCENES)  # every scene held out once
    assert set(r["per_scene"]) == set(SCENES) and r["n_patches"] == 2 * 6 * 36
    assert r["per_image"] == {s: [0.5] for s in SCENES}


def test_same_distribution_is_near_chance_and_degraded_hr_is_told_apart(hr):
    import cv2

    rng = np.random.default_rng(0)
    flipped = realism_test(hr, _map(hr, lambda im: np.ascontiguousarray(im[:, ::-1])), **FAST)
    blurred = realism_test(hr, _map(hr, lambda im: cv2.GaussianBlur(im, (0, 0), 1.2)), **FAST)
    noisy = realism_test(
        hr, _map(hr, lambda im: np.clip(im + rng.normal(0, 8, im.shape), 0, 255).astype(np.uint8)), **FAST
    )
    assert 0.4 <= flipped["accuracy"] <= 0.6, flipped  # other pixels, same kind of image
    assert blurred["accuracy"] > 0.75 and noisy["accuracy"] > 0.75, (blurred["accuracy"], noisy["accuracy"])
    for r in (blurred, noisy):
        lo, hi = r["ci95"]
        assert lo <= r["accuracy"] <= hi and lo > flipped["accuracy"] - 0.05
        assert r["fold_std"] >= 0 and len(r["fold_accuracy"]) == 3 and min(r["train_accuracy"]) > 0.6


def test_realism_test_is_deterministic_and_refuses_mismatched_inputs(hr):
    import cv2

    blur = _map(hr, lambda im: cv2.GaussianBlur(im, (0, 0), 1.0))
    small = {**FAST, "steps": 10}
    assert realism_test(hr, blur, **small) == realism_test(hr, blur, **small)
    # two "seeds" pooled: the blurred one and an exact copy; the copy's pairs are exactly 50 %
    pooled = realism_test({k: v * 2 for k, v in hr.items()}, {k: blur[k] + hr[k] for k in hr}, **small)
    assert all(len(v) == 2 and v[1] == 0.5 for v in pooled["per_image"].values()), pooled["per_image"]
    with pytest.raises(ValueError, match="different scenes"):
        realism_test(hr, {k: v for k, v in blur.items() if k != "ihc"}, **small)
    with pytest.raises(ValueError, match="equal-sized"):
        realism_test(hr, {**blur, "ihc": [blur["ihc"][0][:100]]}, **small)
    with pytest.raises(ValueError, match="at least 2"):
        realism_test({"ihc": hr["ihc"]}, {"ihc": blur["ihc"]}, **small)
    with pytest.raises(ValueError, match="no 256"):
        realism_test(hr, blur, **{**small, "patch": 256})


def test_folds_and_cells():
    groups = assign_folds(list("abcdefghij"), 4, seed=0)
    assert len(groups) == 4 and sorted(sum(groups, [])) == list("abcdefghij")
    assert groups == assign_folds(list("abcdefghij"), 4, seed=0) != assign_folds(list("abcdefghij"), 4, seed=1)
    assert len(assign_folds(list("abc"), 5, 0)) == 3
    cells = patch_cells(np.zeros((100, 130, 3), np.uint8), 32, 100, np.random.default_rng(0))
    assert len(cells) == 12 and len(set(cells)) == 12 and all(t % 32 == 0 and s % 32 == 0 for t, s in cells)


def test_paired_difference_finds_a_real_shift_and_not_noise():
    rng = np.random.default_rng(0)
    base = rng.normal(25, 2, size=(10, 3))  # scenes differ far more than the methods
    better = base + 0.3 + rng.normal(0, 0.05, size=base.shape)
    same = base + rng.normal(0, 0.05, size=base.shape)
    r = stats.paired_difference(better, base, "higher")
    assert r["verdict"] == "A better" and r["ci"][0] > 0 and r["delta"] == pytest.approx(0.3, abs=0.05)
    assert r["p_wilcoxon"] < 0.01 and r["n_scenes"] == 10 and r["n_seeds"] == 3
    assert stats.paired_difference(better, base, "lower")["verdict"] == "B better"  # e.g. NIQE: higher is worse
    assert stats.paired_difference(same, base, "higher")["verdict"] == "no difference shown"
    # an unpaired view of the same numbers cannot see the shift under the scene spread
    unpaired = stats.mean_ci(better)["ci"]
    assert unpaired[1] - unpaired[0] > 1.0 > r["ci"][1] - r["ci"][0]


def test_seedless_rows_broadcast_and_bad_shapes_fail():
    m = np.arange(12.0).reshape(4, 3)
    d = stats.paired_difference(m, m[:, 1], "higher")  # a deterministic row (bicubic) against 3 seeds
    assert d["delta"] == pytest.approx(0.0) and d["n_seeds"] == 3
    with pytest.raises(ValueError, match="same scenes"):
        stats.paired_difference(m, m[:3], "higher")
    with pytest.raises(ValueError, match="same seeds"):
        stats.paired_difference(m, m[:, :2], "higher")
    with pytest.raises(ValueError, match="NaN"):
        stats.mean_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="better"):
        stats.verdict(0.1, 0.2, "bigger")
    w = stats.resample_weights(5, 3, n_boot=50)
    assert w[0].shape == (50, 5) and (w[0].sum(1) == 5).all() and (w[1].sum(1) == 3).all()
    assert stats.boot_means(m, stats.resample_weights(4, 3, 1000)).mean() == pytest.approx(m.mean(), abs=0.3)


def _settings():
    from sfd_lab.bakeoff.contestants import BakeoffSettings

    return BakeoffSettings(contestants=("l1", "sfd", "patchgan"), frontier=("sfd", "patchgan"), seeds=(0, 1, 2))


def test_frontier_compares_at_matched_psnr():
    """SFD's curve lies below PatchGAN's (better realism at every PSNR) by construction: the matched-PSNR
    difference has the right sign and an interval that excludes zero; identical curves show none."""
    from sfd_lab.bakeoff.analysis import frontier

    rng = np.random.default_rng(0)
    s = _settings()
    noise = lambda: rng.normal(0, 0.01, size=(9, 3))  # noqa: E731
    grids = {"l1@0": {"psnr": 26.0 + noise(), "realism": 0.80 + noise()}}
    for key, offset in (("sfd", -0.05), ("patchgan", 0.0)):
        for w, drop in zip(s.gan_weights, (0.2, 0.5, 1.0)):
            grids[f"{key}@{w:g}"] = {"psnr": 26.0 - drop + noise(), "realism": 0.8 - 0.2 * drop + offset + noise()}
    fr = frontier(grids, s, "realism", n_boot=500)
    assert set(fr["curves"]) == {"sfd", "patchgan"} and fr["curves"]["sfd"]["methods"][0] == "l1@0"
    rows = fr["matched"]
    assert len(rows) == 3 and all(r["a"] == "sfd" and r["b"] == "patchgan" for r in rows)
    assert all(r["verdict"] == "A better" and r["ci"][1] < 0 for r in rows), rows  # lower realism = better
    for key in ("sfd",):
        for w in s.gan_weights:
            grids[f"{key}@{w:g}"] = dict(grids[f"patchgan@{w:g}"])
    same = frontier(grids, s, "realism", n_boot=500)["matched"]
    assert all(r["verdict"] == "no difference shown" and abs(r["delta"]) < 1e-9 for r in same), same


def test_lr_choice_learning_and_sanity_flags():
    from sfd_lab.bakeoff.analysis import choose_lr, learned, sanity_flags

    def run(realism, psnr):
        per = {"a": {"psnr": psnr, "niqe": 5.0}}
        return {"val": {"per_image": per, "realism": {"accuracy": realism, "fold_std": 0.0}}}

    assert choose_lr({1e-4: run(0.7, 25), 3e-4: run(0.6, 24), 1e-3: run(0.65, 26)})["chosen"] == 3e-4
    assert choose_lr({1e-4: run(0.6, 25), 1e-3: run(0.6, 26)})["chosen"] == 1e-3  # tie: higher PSNR

    def curve(*accs):
        rows = [{"d_acc": a, "d_acc_real": a, "d_acc_fake": a} for a in accs]
        return {"curve": rows, "d_acc_max": max(accs), "d_acc_final": accs[-1]}

    flat, once, twice = curve(0.5, 0.5, 0.52), curve(0.5, 0.6, 0.5), curve(0.6, 0.7, 0.5)
    assert learned([flat, once, flat])["label"] == "did not learn"  # one probe above 55 % can be chance
    assert learned([twice, flat, twice])["label"] == "learned on 2/3 seeds"
    assert learned([twice, twice])["label"] == "learned"
    summary = {
        "bicubic_usm": {"niqe": {"mean": 5.0}, "realism": {"mean": 0.9}},
        "sfd@0.1": {"niqe": {"mean": 6.0}, "realism": {"mean": 0.7}},
        "patchgan@0.1": {"niqe": {"mean": 4.0}, "realism": {"mean": 0.8}},
    }
    flags = sanity_flags(summary, ["sfd@0.1", "patchgan@0.1"])
    assert flags["niqe"] == {"flagged": True, "rows": {"bicubic_usm": ["sfd@0.1"]}, "perceptual": True}
    assert flags["realism"]["flagged"] is False
