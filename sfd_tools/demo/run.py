"""`make demo`: the SFD workflow on CPU in minutes, on the photos scikit-image ships, with a comparison.

1. Data: HR crops of six training photos and 256² crops of two held-out photos of other scenes
   (``datasets/demo_sr``), LR by MATLAB-style bicubic ×4.
2. CLIP: real RN50 weights when they are here (``SFD_CLIP_WEIGHTS=/path``, or RN50/openai already in
   the hub cache); otherwise a randomly initialised RN50 with BatchNorm calibrated on training
   photos, saved as ``experiments/pretrained_models/RN50_random_calibrated.pt`` and marked as such in
   the file, the training log and the summary. The demo itself never downloads (it stays fast and
   offline-safe, with the numbers the README shows): ``SFD_CLIP_WEIGHTS=openai make demo`` asks for
   the real weights, downloaded on first use like any recipe's tag.
3. Stage 1: PSNR-oriented (L1) training of the demo generator (``options/demo_SR_psnr_cpu.yml``).
4. Stage 2: SFD fine-tuning from stage 1 (``options/demo_SFD_cpu.yml``).
5. The README's commands on the held-out crops: inference and evaluation (PSNR/SSIM on Y, NIQE,
   SFD-IQA with the stage-2 discriminator) of bicubic, stage 1 and stage 2; the perception–distortion
   plot with the three points; a side-by-side image; the SFD-IQA ranking report.
6. A summary table with every path and, with random CLIP weights, what that means for the numbers.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

DATA = "datasets/demo_sr"
STAGE1, STAGE2 = "demo_SR_psnr_cpu", "demo_SFD_cpu"
RECIPE1, RECIPE2 = f"options/{STAGE1}.yml", f"options/{STAGE2}.yml"
RANDOM_CLIP_FILE = "experiments/pretrained_models/RN50_random_calibrated.pt"
METHODS = (
    ("Bicubic", "results/demo_bicubic"),
    ("Stage 1 (L1)", f"results/{STAGE1}"),
    ("Stage 2 (SFD)", f"results/{STAGE2}"),
)
SIDE_BY_SIDE = "results/demo_side_by_side.png"
PD_PLOT = "results/pd_demo"


def choose_clip_weights(root: str) -> tuple[str, bool]:
    """(clip_pretrained value, is_random). SFD_CLIP_WEIGHTS (a file or an open_clip tag) is fetched if
    needed; without it, RN50/openai is used only when already in the cache (no request is made)."""
    from sfd_arch.clip_backbone import CLIPWeightsNotFound, resolve_clip_weights

    given = os.environ.get("SFD_CLIP_WEIGHTS")
    if given:
        resolve_clip_weights("RN50", given)  # downloads a tag on first use; fails clearly if it cannot
        return given, False
    try:
        resolve_clip_weights("RN50", "openai", download=False)
        return "openai", False
    except CLIPWeightsNotFound:
        pass
    path = os.path.join(root, RANDOM_CLIP_FILE)
    if not os.path.isfile(path):
        write_random_calibrated_rn50(path)
    return RANDOM_CLIP_FILE, True


def write_random_calibrated_rn50(path: str, seed: int = 0) -> str:
    """A random RN50 with BatchNorm statistics calibrated on training photos, saved as an open_clip
    checkpoint (``{"state_dict": ..., "sfd_basicsr": {"random_calibrated": True, ...}}``)."""
    import open_clip
    import torch

    from sfd_arch.clip_backbone import calibrate_random_clip
    from sfd_arch.clip_provenance import save_random_calibrated
    from sfd_utils.photos import TRAIN_PHOTOS, photo_crops

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.create_model("RN50", pretrained=None, force_quick_gelu=True)
    calibrate_random_clip(model, photo_crops(TRAIN_PHOTOS[:3], 64, 96)[:48])
    return save_random_calibrated(model, path, seed=seed, photos=list(TRAIN_PHOTOS[:3]))


def _run(args: list[str], what: str) -> None:
    """One README command as a user runs it (printed first); a failure ends the demo (exit status 4; 3
    when the step was interrupted)."""
    import signal

    from sfd_utils.cli import EXIT_FAILED, EXIT_INTERRUPTED

    print(f"\n[demo] {what}\n[demo] $ python {shlex.join(args)}", flush=True)
    code = subprocess.call([sys.executable, *args])
    if code in (EXIT_INTERRUPTED, -signal.SIGINT, -signal.SIGTERM):
        raise KeyboardInterrupt
    if code:
        print(f"[demo] failed ({what}, exit status {code}); the command is printed above", file=sys.stderr)
        raise SystemExit(EXIT_FAILED)


def _train(recipe: str, force: list[str], iters: int | None) -> None:
    force = [*force, *([f"train:total_iter={iters}"] if iters else [])]
    _run(["basicsr/train.py", "-opt", recipe, *(["--force_yml", *force] if force else [])], f"training {recipe}")


def mean_channel_error(sr_dir: str, gt_dir: str, suffix: str = "_out") -> list[float]:
    """Mean signed error (SR − HR) per R, G, B channel in 8-bit levels over the paired images:
    a colour cast shows as a channel far from 0."""
    import cv2
    import numpy as np

    from sfd_utils.images import UnreadableImage, read_image

    sums, count = np.zeros(3), 0
    for name in sorted(os.listdir(gt_dir)):
        stem, _ = os.path.splitext(name)
        try:
            sr = read_image(os.path.join(sr_dir, f"{stem}{suffix}.png"), cv2.IMREAD_COLOR)
            gt = read_image(os.path.join(gt_dir, name), cv2.IMREAD_COLOR)
        except UnreadableImage:
            continue
        if sr.shape != gt.shape:
            continue
        sums += (sr.astype(np.float64) - gt).reshape(-1, 3).mean(0)[::-1]  # BGR -> RGB
        count += 1
    return [float(v) for v in sums / max(count, 1)]


def side_by_side(names: list[str], out_path: str, suffix: str = "_out") -> str:
    """One row per crop: bicubic | stage 1 | stage 2 | HR, each labelled."""
    import cv2
    import numpy as np

    from sfd_utils.images import read_image, write_image

    rows = []
    for name in names:
        stem = os.path.splitext(name)[0]
        panels = [read_image(os.path.join(d, f"{stem}{suffix}.png"), cv2.IMREAD_COLOR) for _, d in METHODS]
        panels.append(read_image(os.path.join(DATA, "val", "hr", name), cv2.IMREAD_COLOR))
        labelled = []
        for label, img in zip([m for m, _ in METHODS] + ["HR"], panels):
            head = np.full((22, img.shape[1], 3), 255, np.uint8)
            cv2.putText(head, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
            labelled.append(np.concatenate([head, img], 0))
            labelled.append(np.full((img.shape[0] + 22, 4, 3), 255, np.uint8))
        rows.append(np.concatenate(labelled[:-1], 1))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    write_image(out_path, np.concatenate(rows, 0))
    return out_path


def _fmt(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def summary_table(results: dict[str, dict], errors: dict[str, list[float]]) -> str:
    head = "| method | PSNR-Y (dB) | SSIM-Y | NIQE ↓ | SFD-IQA ↑ | mean error R / G / B (levels) |"
    lines = [head, "|---|---|---|---|---|---|"]
    for label, res in results.items():
        m = res.get("mean", {})
        err = " / ".join(f"{e:+.2f}" for e in errors[label])
        lines.append(
            f"| {label} | {_fmt(m.get('psnr'))} | {_fmt(m.get('ssim'), 4)} | {_fmt(m.get('niqe'))} | "
            f"{_fmt(m.get('sfd_iqa'), 3)} | {err} |"
        )
    return "\n".join(lines)


def run_demo(root: str = ".", iters: int | None = None) -> int:
    """The whole demo from the repository root ``root``; ``iters`` shortens both trainings (tests)."""
    from sfd_tools.demo.data import DEMO_SETTINGS, demo_data_ready, prepare_demo_sr

    os.chdir(root)
    started = time.time()
    if not demo_data_ready(DATA):
        print("[demo] writing the demo data set from the photos scikit-image ships ...", flush=True)
        counts = prepare_demo_sr(DATA, **DEMO_SETTINGS)
        print(f"[demo] wrote {counts['train']} training / {counts['val']} held-out pairs to {DATA}")
    clip, is_random = choose_clip_weights(".")
    caveat = (
        "CLIP weights: none on this machine (the demo downloads nothing by itself), so the SFD discriminator uses "
        f"a RANDOMLY initialised RN50 ({clip}, BatchNorm calibrated on photos). The run shows the machinery "
        "working; its SFD-IQA numbers measure what a random network's features separate, not CLIP's semantics. "
        "For real weights: SFD_CLIP_WEIGHTS=openai make demo (downloads RN50/openai once) or "
        "SFD_CLIP_WEIGHTS=/path/to/RN50 open_clip checkpoint make demo"
    )
    print(f"[demo] {caveat if is_random else f'CLIP RN50 weights: {clip}'}", flush=True)
    force2 = [] if clip == RANDOM_CLIP_FILE else [f"network_d:clip_pretrained={clip}"]
    _train(RECIPE1, [], iters)
    _train(RECIPE2, force2, iters)

    models = f"experiments/{STAGE2}/models"
    disc = f"{models}/net_d_latest.pth"
    val_lr, val_hr = f"{DATA}/val/lr_x4", f"{DATA}/val/hr"
    generators = {
        "Bicubic": ["--arch", "SFDBicubicUpsampler", "--arch-opt", "scale=4"],
        "Stage 1 (L1)": ["--model", f"experiments/{STAGE1}/models/net_g_latest.pth", "--opt", RECIPE1],
        "Stage 2 (SFD)": ["--model", f"{models}/net_g_latest.pth", "--opt", RECIPE2],
    }
    results, errors = {}, {}
    for label, out in METHODS:
        _run(["scripts/inference_sr.py", "-i", val_lr, "-o", out, *generators[label], "--quiet"], f"{label}: inference")
        name = os.path.basename(out)
        _run(
            [
                "scripts/evaluate_sr.py", "--sr", out, "--gt", val_hr, "--sr-suffix", "_out", "--scale", "4",
                "--metrics", "psnr", "ssim", "niqe", "sfd_iqa", "--sfd-iqa-checkpoint", disc,
                "--label", label, "--name", name, "--out", "results/eval", "--quiet",
            ],
            f"{label}: evaluation",
        )  # fmt: skip
        with open(f"results/eval/{name}.json", encoding="utf-8") as f:
            results[label] = json.load(f)
        errors[label] = mean_channel_error(out, val_hr)
    evals = [f"results/eval/{os.path.basename(out)}.json" for _, out in METHODS]
    _run(["scripts/plot_pd.py", *evals, "--y", "sfd_iqa", "--out", PD_PLOT], "perception–distortion plot")
    names = sorted(os.listdir(val_hr))
    picks = [names[0], names[len(names) // 2], names[-1]]
    side_by_side(picks, SIDE_BY_SIDE)

    from sfd_tools.iqa.ranking import run_ranking_report

    print("\n[demo] SFD-IQA ranking report of the stage-2 discriminator (graded degradations of held-out crops)")
    report = run_ranking_report(
        disc,
        out_dir="results/iqa_ranking_demo",
        speed=False,
        training={"recipe": RECIPE2, "clip_pretrained": clip, "random_clip": is_random},
        progress=False,
    )
    table = summary_table(results, errors)
    summary = {
        "table": table,
        "results": {k: v.get("mean", {}) for k, v in results.items()},
        "mean_channel_error_rgb": errors,
        "clip_pretrained": clip,
        "random_clip": is_random,
        "held_out_images": len(names),
        "wall_s": round(time.time() - started, 1),
    }
    with open("results/demo_summary.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    print(f"\n[demo] held-out crops: {len(names)} of 256² from photos of scenes not used in training ({val_hr})")
    print(table)
    print(f"[demo] side-by-side (bicubic | stage 1 | stage 2 | HR): {SIDE_BY_SIDE}")
    print(f"[demo] perception–distortion plot: {PD_PLOT}.png ; evaluations: results/eval/*.json")
    print(f"[demo] checkpoints: experiments/{STAGE1}/models/, {models}/ ; TensorBoard: tensorboard --logdir tb_logger")
    print(f"[demo] SFD-IQA ranking report: {report} ; summary: results/demo_summary.json")
    if is_random:
        print(f"[demo] NOTE: {caveat}")
    print(f"[demo] done in {summary['wall_s']:.0f} s")
    return 0


def run_demo_cli(args) -> int:
    """``scripts/demo.py``: the namespace of :func:`sfd_tools.sr.cli.demo_parser`."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return run_demo(root, args.iters)
