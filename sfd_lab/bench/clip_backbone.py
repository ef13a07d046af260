"""Forward+backward time of the frozen CLIP backbone per 256² image (gradient to the input only),
RN50 and ViT-B-16 with random weights, side by side in one process. Writes JSON + Markdown."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

import torch

from sfd_arch.clip_backbone import FrozenCLIP


def time_backbone(name: str, size: int, batch: int, repeats: int, device: str) -> dict:
    m = FrozenCLIP(name, None).to(device)
    x = torch.rand(batch, 3, size, size, device=device)
    times = []
    for i in range(repeats + 1):  # first run is warm-up
        img = x.clone().requires_grad_(True)
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = m(img)
        (sum(f.float().mean() for f in out.middle) + out.embedding.float().sum()).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append((time.perf_counter() - t) / batch)
    return {
        "model": name,
        "size": size,
        "batch": batch,
        "median_s_per_image": statistics.median(times),
        "min_s_per_image": min(times),
        "repeats": repeats,
    }


def run_clip_backbone(a) -> int:
    """``scripts/bench_clip_backbone.py``: the namespace of :func:`sfd_lab.bench.cli.clip_backbone_parser`."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = [time_backbone(n, a.size, a.batch, a.repeats, device) for n in ("RN50", "ViT-B-16")]
    meta = {
        "command": " ".join(sys.argv),
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, f"clip_backbone-{device}-{meta['date']}")
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    lines = ["| CLIP | input | s / image (median) | min |", "|---|---|---|---|"]
    lines += [
        f"| {r['model']} | {r['size']}² x{r['batch']} | {r['median_s_per_image']:.3f} | {r['min_s_per_image']:.3f} |"
        for r in rows
    ]
    with open(stem + ".md", "w") as f:
        f.write(
            f"Frozen CLIP forward + backward to the input, random weights, {device}, "
            f"{meta['threads']} threads ({meta['date']}).\n\n" + "\n".join(lines) + "\n"
        )
    print("\n".join(lines))
    print(f"wrote {stem}.json / .md")
    return 0
