"""CLIP passes per iteration in every GAN host, and one iteration of the stock ESRGANModel drop-in
(feature reuse off / on) vs SFDModel, side by side. Writes JSON + Markdown (sfd_bench.host_cost)."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--clip", default="tiny-rn", help="open_clip model for the timing rows (random weights)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=128, help="HR crop size")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", default="benchmarks/results")
    a = p.parse_args()
    import torch

    from sfd_bench.host_cost import host_cost, write_report

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = host_cost(a.clip, a.batch, a.size, a.repeats, device)
    stem = write_report(result, a.out, "python " + " ".join(sys.argv))
    print(open(stem + ".md").read())
    print(f"wrote {stem}.json / .md")


if __name__ == "__main__":
    main()
