"""The realism test: a classifier two-sample test of HR against SR patches, cross-validated by scene.

Question: can a fresh classifier tell a method's outputs from the real high-resolution photos? A
small CNN (:class:`PatchCritic`) is trained from scratch to label patches "HR" or "SR" and is then
scored on patches of scenes it never saw. Accuracy 50 % = indistinguishable (to this classifier);
the further above 50 %, the more visible the method's artefacts. (Lopez-Paz & Oquab, "Revisiting
classifier two-sample tests", ICLR 2017.)

Why it is independent of every contestant:

- no CLIP, no pretrained weight of any kind: the critic starts from random weights each fold;
- an architecture unlike every bake-off discriminator: residual blocks with GroupNorm and
  average-pool downsampling, ending in *statistics pooling* (per-channel mean and standard deviation
  over the patch, then one linear layer) — not U-Net SN's per-pixel map with spectral norm, not
  VGG-style's flatten + fully connected head, not PatchGAN's per-patch logit map with InstanceNorm,
  not SFD's heads on frozen CLIP features;
- it is trained on the held-out images' outputs, after the generators are frozen: nothing flows
  back into training.

Protocol (each step deterministic in ``seed``):

1. Patches: per image, ``patches_per_image`` cells of a non-overlapping ``patch``² grid, drawn
   uniformly; the HR and SR patch of a cell are taken at the same place, so content is balanced between the
   two classes and only the rendering differs.
2. Folds: the scenes are shuffled and dealt into ``folds`` groups. Per fold the critic trains on the
   other scenes' patches (Adam, random flips and 90° rotations) and predicts the fold's patches.
   Every scene is tested exactly once, by a critic that never saw it.
3. Report: pooled held-out accuracy, per-fold accuracies (mean, std), per-scene accuracies (for
   paired comparisons between methods), a 95 % interval from a bootstrap over scenes, and the
   critics' final training accuracy (a critic that cannot even fit its training patches says the
   classes are alike — or that the budget is too small; both are reported, not hidden).

Identical HR and SR images give exactly 50 % (same patch, same output, one of the two labels
right); the tests also check HR against flipped HR (≈ 50 %) and against blurred / noisy HR (≫ 50 %).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sfd_lab.bakeoff.stats import percentile_ci

DEFAULTS = {"patch": 64, "patches_per_image": 48, "folds": 4, "steps": 300, "batch": 32, "width": 16, "lr": 2e-3}


class _Block(nn.Module):
    """Pre-activation residual block: GroupNorm, GELU, 3×3 conv, twice; 1×1 projection when widening."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(4, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.n2, self.c2 = nn.GroupNorm(4, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c1(F.gelu(self.n1(x)))
        return self.skip(x) + self.c2(F.gelu(self.n2(y)))


class PatchCritic(nn.Module):
    """(B, 3, P, P) RGB in [0, 1] -> (B,) logits of "this patch is SR"; P a multiple of 8.

    Input: the patch and its high-pass residual (patch minus its 3×3 box blur, ×``HIGHPASS_GAIN``),
    as steganalysis detectors do: noise of a few grey levels and ringing are tiny next to image
    content, and a fixed residual lets a small critic see them within a few hundred steps. A
    lossless 2× space-to-depth stem (pixel unshuffle: every pixel reaches the first conv, so
    single-pixel speckle and one-pixel halos stay visible at a quarter of the cost), three residual
    stages at widths w, 2w, 2w with 2× average-pool downsampling between them, then statistics
    pooling: each channel's spatial mean and standard deviation (texture statistics, as NIQE-like
    measures use, but learned), mapped to one logit. 41 k parameters at w = 16.
    """

    HIGHPASS_GAIN = 8.0

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Conv2d(24, w, 3, padding=1)
        self.stages = nn.ModuleList([_Block(w, w), _Block(w, 2 * w), _Block(2 * w, 2 * w)])
        self.norm = nn.GroupNorm(4, 2 * w)
        self.head = nn.Linear(4 * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = (x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)) * self.HIGHPASS_GAIN
        h = self.stem(F.pixel_unshuffle(torch.cat([x * 2.0 - 1.0, residual], dim=1), 2))
        for i, stage in enumerate(self.stages):
            h = stage(h if i == 0 else F.avg_pool2d(h, 2))
        h = F.gelu(self.norm(h)).flatten(2)
        return self.head(torch.cat([h.mean(-1), h.std(-1)], dim=1))[:, 0]


def _check_pairs(hr: dict, sr: dict) -> list[str]:
    """The scenes, after checking HR and SR hold the same scenes, counts and image sizes."""
    if set(hr) != set(sr):
        raise ValueError(f"HR and SR name different scenes: {sorted(set(hr) ^ set(sr))}")
    for scene in hr:
        if len(hr[scene]) != len(sr[scene]) or not hr[scene]:
            raise ValueError(f"scene {scene!r}: {len(hr[scene])} HR but {len(sr[scene])} SR images (need equal, ≥ 1)")
        for i, (a, b) in enumerate(zip(hr[scene], sr[scene])):
            if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or b.dtype != np.uint8:
                raise ValueError(
                    f"scene {scene!r} image {i}: HR {a.shape} {a.dtype} and SR {b.shape} {b.dtype} must be "
                    "equal-sized (H, W, 3) uint8"
                )
    if len(hr) < 2:
        raise ValueError(f"the realism test cross-validates across scenes and needs at least 2, got {len(hr)}")
    return sorted(hr)


def patch_cells(img: np.ndarray, patch: int, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to ``n`` top-left corners of non-overlapping ``patch``² grid cells of ``img`` (H, W, ...),
    drawn uniformly without replacement (flat and detailed regions alike: noise shows in the first,
    blur in the second; a choice by HR content would bias the SR side)."""
    h, w = img.shape[:2]
    cells = [(t, s) for t in range(0, h - patch + 1, patch) for s in range(0, w - patch + 1, patch)]
    if not cells:
        raise ValueError(f"an image of {h}×{w} holds no {patch}² patch")
    pick = rng.choice(len(cells), size=min(n, len(cells)), replace=False)
    return [cells[i] for i in sorted(pick)]


def _patches(hr: dict, sr: dict, scenes: list[str], patch: int, per_image: int, seed: int) -> dict:
    """{scene: (HR (N, 3, P, P), SR (N, 3, P, P), image index (N,))}: float patches, the same cells
    for both, and which of the scene's images each pair comes from."""
    out = {}
    for k, scene in enumerate(scenes):
        rng = np.random.default_rng([seed, 3, k])
        a, b, owner = [], [], []
        for i, (hr_img, sr_img) in enumerate(zip(hr[scene], sr[scene])):
            for t, s in patch_cells(hr_img, patch, per_image, rng):
                a.append(hr_img[t : t + patch, s : s + patch])
                b.append(sr_img[t : t + patch, s : s + patch])
                owner.append(i)

        def stack(xs: list) -> torch.Tensor:
            return torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255.0

        out[scene] = (stack(a), stack(b), np.asarray(owner))
    return out


def assign_folds(scenes: list[str], folds: int, seed: int) -> list[list[str]]:
    """The scenes shuffled (by ``seed``) and dealt into ``min(folds, len(scenes))`` non-empty groups."""
    order = [scenes[i] for i in np.random.default_rng([seed, 11]).permutation(len(scenes))]
    k = max(2, min(folds, len(scenes)))
    return [sorted(order[i::k]) for i in range(k)]


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and 90° rotation, one draw per patch."""
    flip = torch.rand(x.shape[0], generator=g) < 0.5
    rot = torch.rand(x.shape[0], generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return torch.where(rot[:, None, None, None], x.transpose(-1, -2), x)


def _train_critic(hr: torch.Tensor, sr: torch.Tensor, o: dict, seed: int) -> tuple[PatchCritic, float]:
    """A critic trained on paired patches (HR label 0, SR label 1); returns it and its accuracy on
    its last 20 % of training batches (how well it fits what it sees)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    critic = PatchCritic(o["width"])
    opt = torch.optim.Adam(critic.parameters(), lr=o["lr"], betas=(0.9, 0.99))
    half = max(1, o["batch"] // 2)
    labels = torch.cat([torch.zeros(half), torch.ones(half)])
    tail_right, tail_n = 0, 0
    critic.train()
    for step in range(o["steps"]):
        idx = torch.randint(0, hr.shape[0], (half,), generator=g)
        x = _augment(torch.cat([hr[idx], sr[idx]]), g)
        logits = critic(x)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= o["steps"] - max(1, o["steps"] // 5):
            tail_right += int(((logits > 0).float() == labels).sum())
            tail_n += labels.numel()
    return critic.eval(), tail_right / max(1, tail_n)


@torch.no_grad()
def _right_per_pair(critic: PatchCritic, hr: torch.Tensor, sr: torch.Tensor, chunk: int = 256) -> np.ndarray:
    """(N,) right answers (0, 1 or 2) per HR/SR pair: HR should get logit < 0, SR > 0."""
    right = np.zeros(hr.shape[0], dtype=np.int64)
    for x, label in ((hr, False), (sr, True)):
        said = torch.cat([critic(x[i : i + chunk]) > 0 for i in range(0, x.shape[0], chunk)])
        right += (said == label).numpy()
    return right


def realism_test(
    hr: dict[str, list[np.ndarray]],
    sr: dict[str, list[np.ndarray]],
    *,
    seed: int = 0,
    patch: int = DEFAULTS["patch"],
    patches_per_image: int = DEFAULTS["patches_per_image"],
    folds: int = DEFAULTS["folds"],
    steps: int = DEFAULTS["steps"],
    batch: int = DEFAULTS["batch"],
    width: int = DEFAULTS["width"],
    lr: float = DEFAULTS["lr"],
    n_boot: int = 2000,
) -> dict:
    """Classifier two-sample test of HR against SR, cross-validated across scenes.

    Args:
        hr, sr: {scene: [image, ...]} with images (H, W, 3) uint8 RGB; the same scenes, and per scene
            the same number of images, HR and SR of the same photo at the same index and size.
            (To pool several seeds of a method, list each HR image once per seed.)
        seed: patches, folds, critic initialisation and batches all follow from it.
        patch / patches_per_image: patch side (a multiple of 8) and how many per image.
        folds: scene groups (at least 2, at most one per scene); each is held out once.
        steps / batch / width / lr: the critic's training (Adam) and size (see :class:`PatchCritic`).
        n_boot: bootstrap replicates over scenes for the interval.

    Returns:
        ``accuracy`` (pooled over every held-out patch; 0.5 = indistinguishable), ``ci95`` (bootstrap
        over scenes), ``fold_accuracy`` (list), ``fold_mean`` / ``fold_std`` (ddof 1), ``per_scene``
        {scene: {"accuracy", "n"}}, ``per_image`` {scene: [accuracy of each listed image]} (e.g. per
        seed when seeds were pooled), ``train_accuracy`` (per fold: the critic's fit on its own
        training batches), ``folds`` (the scene groups), ``n_patches`` (HR + SR) and ``settings``.

    Raises:
        ValueError: scenes, counts or sizes differ between HR and SR, fewer than 2 scenes, or an
        image smaller than one patch.
    """
    o = {"patch": patch, "patches_per_image": patches_per_image, "folds": folds, "steps": steps}
    o.update({"batch": batch, "width": width, "lr": lr})
    if min(patch, patches_per_image, steps, batch, width) < 1 or width % 4 or patch % 8:
        raise ValueError(f"realism test settings must be positive (width a multiple of 4, patch of 8): {o}")
    scenes = _check_pairs(hr, sr)
    data = _patches(hr, sr, scenes, patch, patches_per_image, seed)
    groups = assign_folds(scenes, folds, seed)
    per_scene, per_image, fold_acc, train_acc = {}, {}, [], []
    for f, held in enumerate(groups):
        train = [s for s in scenes if s not in held]
        critic, fit = _train_critic(
            torch.cat([data[s][0] for s in train]), torch.cat([data[s][1] for s in train]), o, seed * 1000 + f
        )
        right_f, n_f = 0, 0
        for s in held:
            pair_right, owner = _right_per_pair(critic, data[s][0], data[s][1]), data[s][2]
            right, n = int(pair_right.sum()), 2 * len(pair_right)
            per_scene[s] = {"accuracy": right / n, "n": n}
            per_image[s] = [float(pair_right[owner == i].mean() / 2) for i in range(len(hr[s]))]
            right_f, n_f = right_f + right, n_f + n
        fold_acc.append(right_f / n_f)
        train_acc.append(round(fit, 4))
    acc = np.array([per_scene[s]["accuracy"] for s in scenes])
    n = np.array([per_scene[s]["n"] for s in scenes], dtype=np.float64)
    draws = np.random.default_rng([seed, 17]).multinomial(len(scenes), np.full(len(scenes), 1 / len(scenes)), n_boot)
    boot = (draws * n * acc).sum(1) / (draws * n).sum(1)
    return {
        "accuracy": float((acc * n).sum() / n.sum()),
        "ci95": list(percentile_ci(boot)),
        "fold_accuracy": fold_acc,
        "fold_mean": float(np.mean(fold_acc)),
        "fold_std": float(np.std(fold_acc, ddof=1)) if len(fold_acc) > 1 else 0.0,
        "per_scene": {s: per_scene[s] for s in scenes},
        "per_image": {s: per_image[s] for s in scenes},
        "train_accuracy": train_acc,
        "folds": groups,
        "n_patches": int(n.sum()),
        "settings": {**o, "seed": seed},
    }
