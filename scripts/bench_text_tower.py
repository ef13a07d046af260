"""Cost of the frozen-CLIP options (truncated text tower, CLIP input size, frozen-weight dtype):
writes benchmarks/results/text_tower-<device>-<date>.{json,md}. See sfd_bench/text_tower.py."""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()
import torch  # noqa: E402

from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS, register_clip_config  # noqa: E402
from sfd_bench import text_tower as bench  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--clip-model", default="RN50", help="open_clip model (random weights)")
    p.add_argument("--n-ctx", type=int, default=16)
    p.add_argument("--repeats", type=int, default=7, help="interleaved timings per variant")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--crop", type=int, default=128, help="training crop (HR) size")
    p.add_argument("--input-size", type=int, default=224, help="clip_input_size to compare with")
    p.add_argument("--skip", nargs="*", default=[], choices=["text_tower", "sfd_step", "clip_input", "frozen_weights"])
    p.add_argument("--out", default="benchmarks/results")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    register_clip_config(TINY_CLIP_CONFIGS)  # --clip-model tiny-rn / tiny-vit for a quick run
    meta = {**bench.machine(), "command": "python " + " ".join(sys.argv)}
    rows = []
    if "frozen_weights" not in a.skip:
        rows.append(bench.frozen_weights_row(a.clip_model))
    if "text_tower" not in a.skip:
        rows.append(bench.text_tower_row(a.clip_model, a.n_ctx, a.repeats, device))
    if "clip_input" not in a.skip:
        rows.append(bench.clip_input_row(a.clip_model, a.crop, a.input_size, a.batch, a.repeats, device))
    if "sfd_step" not in a.skip:
        rows.append(bench.sfd_step_row(a.clip_model, a.n_ctx, a.batch, a.crop, a.repeats, device))
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, f"text_tower-{device}-{meta['date']}")
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    report = bench.markdown(rows, meta)
    with open(stem + ".md", "w") as f:
        f.write(report + "\n")
    print(report)
    print(f"wrote {stem}.json / .md")


if __name__ == "__main__":
    main()
