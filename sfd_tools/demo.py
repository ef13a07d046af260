"""`make demo`: prepare data from scikit-image's photos, train SFD on CPU, report where things went.

The demo uses real CLIP weights when they are here (``SFD_CLIP_WEIGHTS=/path/to/file`` or RN50/openai
in the local open_clip cache); otherwise a randomly initialised RN50 with BatchNorm statistics
calibrated on the demo photos, and it says so: that run shows the pipeline working, not semantics.
"""

from __future__ import annotations

import os
import subprocess
import sys

RECIPE = "options/demo_SFD_cpu.yml"
DATA = "datasets/demo_sr"
RANDOM_CLIP_FILE = "experiments/pretrained_models/RN50_random_calibrated.pt"


def choose_clip_weights(root: str) -> tuple[str, bool]:
    """(clip_pretrained value, is_random)."""
    from sfd_arch.clip_backbone import CLIPWeightsNotFound, resolve_clip_weights

    given = os.environ.get("SFD_CLIP_WEIGHTS")
    if given:
        resolve_clip_weights("RN50", given)  # fails clearly if the file is missing
        return given, False
    try:
        resolve_clip_weights("RN50", "openai")
        return "openai", False
    except CLIPWeightsNotFound:
        pass
    path = os.path.join(root, RANDOM_CLIP_FILE)
    if not os.path.isfile(path):
        import open_clip
        import torch

        from sfd_arch.clip_backbone import calibrate_random_clip
        from sfd_bench.learning_check import photo_crops

        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.manual_seed(0)
        model = open_clip.create_model("RN50", pretrained=None, force_quick_gelu=True)
        calibrate_random_clip(model, photo_crops(("astronaut", "coffee", "rocket"), 64, 96)[:48])
        torch.save(model.state_dict(), path)
    return path, True


def run_demo(root: str = ".", iters: int | None = None) -> int:
    from sfd_tools.demo_data import prepare_demo_sr

    os.chdir(root)
    if not os.path.isdir(os.path.join(DATA, "val", "hr")):
        counts = prepare_demo_sr(DATA)
        print(f"[demo] wrote {counts['train']} training / {counts['val']} validation pairs to {DATA}")
    clip, is_random = choose_clip_weights(".")
    if is_random:
        print(
            "[demo] No CLIP RN50 weights on this machine (nothing is downloaded): using a RANDOMLY initialised "
            f"RN50 ({clip}). The run shows the pipeline working, not semantic quality. For real weights set "
            "SFD_CLIP_WEIGHTS=/path/to/RN50 open_clip checkpoint and run `make demo` again."
        )
    else:
        print(f"[demo] CLIP RN50 weights: {clip}")
    force = [f"network_d:clip_pretrained={clip}"]
    if iters:
        force.append(f"train:total_iter={iters}")
    cmd = [sys.executable, "basicsr/train.py", "-opt", RECIPE, "--force_yml", *force]
    print("[demo] " + " ".join(cmd))
    code = subprocess.call(cmd)
    if code:
        return code
    name = "demo_SFD_cpu"
    models = f"experiments/{name}/models"
    # The README's infer -> evaluate -> plot commands on the held-out crops, as a user runs them.
    after = [
        [
            "scripts/inference_sr.py",
            "-i",
            f"{DATA}/val/lr_x4",
            "-o",
            f"results/{name}",
            "--model",
            f"{models}/net_g_latest.pth",
            "--opt",
            RECIPE,
        ],
        [
            "scripts/evaluate_sr.py",
            "--sr",
            f"results/{name}",
            "--gt",
            f"{DATA}/val/hr",
            "--sr-suffix",
            "_out",
            "--scale",
            "4",
            "--metrics",
            "psnr",
            "ssim",
            "sfd_iqa",
            "--sfd-iqa-checkpoint",
            f"{models}/net_d_latest.pth",
            "--label",
            "SFD-demo",
            "--out",
            "results/eval",
        ],
        ["scripts/plot_pd.py", "results/eval/SFD-demo.json", "--y", "sfd_iqa", "--out", "results/pd_demo"],
    ]
    for args in after:
        print("[demo] python " + " ".join(args))
        code = subprocess.call([sys.executable, *args])
        if code:
            return code
    from sfd_iqa_tools.ranking import run_ranking_report

    report = run_ranking_report(
        f"{models}/net_d_latest.pth",
        out_dir="results/iqa_ranking_demo",
        speed=False,
        training={"recipe": RECIPE, "clip_pretrained": clip, "random_clip": is_random},
    )
    print(f"[demo] checkpoints:      {models}/ (net_g_latest.pth, net_d_latest.pth)")
    print(f"[demo] training states:  experiments/{name}/training_states/ (resume with --auto_resume)")
    print(f"[demo] validation images: experiments/{name}/visualization/")
    print(f"[demo] TensorBoard:      tensorboard --logdir tb_logger/{name}")
    print(
        f"[demo] SR outputs:       results/{name}/ ; evaluation: results/eval/SFD-demo.json ; "
        "perception-distortion plot: results/pd_demo.png"
    )
    print(f"[demo] SFD-IQA report:   {report}")
    return 0
