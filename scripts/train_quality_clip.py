"""Train the quality-aware tiny CLIP (open_clip `quality-tiny-rn`) on CPU from scikit-image's training
photos, then report its zero-shot quality accuracy on the held-out photos. Writes an ordinary open_clip
state_dict (use it as `clip_model: quality-tiny-rn`, `clip_pretrained: <file>`) and a JSON sidecar."""

import argparse
import json
import os
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--out",
        default="experiments/pretrained_models/quality_clip_tiny.pt",
        help="weights file to write; the sidecar is <stem>.json (default: %(default)s)",
    )
    p.add_argument("--steps", type=int, default=300, help="optimiser steps (default: %(default)s)")
    p.add_argument("--batch", type=int, default=128, help="images per step, half sharp (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    a = p.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from sfd_utils.compat import install

    install()  # before anything imports basicsr
    import torch

    from sfd_bench.quality_clip import QualityCLIPSettings, sidecar_path, train_quality_clip

    if a.threads:
        torch.set_num_threads(a.threads)
    settings = QualityCLIPSettings(steps=a.steps, batch=a.batch, lr=a.lr, seed=a.seed)
    facts = train_quality_clip(a.out, settings)
    for size, z in facts["zero_shot_heldout"].items():
        kinds = ", ".join(f"{k} {v['auc']:.3f}" for k, v in z["per_kind"].items())
        print(
            f"zero-shot on {z['n_crops']} held-out {size}² crops: AUC {z['auc']:.3f}, accuracy {z['accuracy']:.3f} "
            f"(AUC per degradation: {kinds})"
        )
    print(f"weights: {a.out}\nfacts:   {sidecar_path(a.out)}")
    print(json.dumps({"seconds": facts["seconds"], "settings_key": facts["settings_key"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
