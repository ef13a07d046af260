"""Small programs the GPU check runs as its own steps (``python -m sfd_lab.gpu_check.run clip|csud``):
full-size CLIP forward + backward, and CSUD on the device (a few autocast training iterations of
CSUDModel, then tiled derain inference as ``scripts/derain.py`` runs it). Each returns a dict the
check writes as JSON; a failure of one part is recorded in it, not raised."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time

AMP = {"bf16": "bfloat16", "fp16": "float16"}


def environment() -> dict:
    """torch / CUDA / device / package versions, and which of our dependencies import."""
    import importlib.metadata as md
    import platform

    import torch

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    mods = {}
    for m in ("basicsr", "open_clip", "ftfy", "cv2", "skimage", "yaml", "pytest"):
        try:
            __import__(m)
            mods[m] = "ok"
        except Exception as err:  # a missing or broken dependency is reported, not raised
            mods[m] = f"{type(err).__name__}: {err}"
    cuda = torch.cuda.is_available()
    dist = torch.distributed.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": cuda,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
        "nccl": bool(torch.distributed.is_nccl_available()) if dist else False,
        "gloo": bool(torch.distributed.is_gloo_available()) if dist else False,
        "versions": {
            d: version(d) for d in ("torchvision", "basicsr", "open_clip_torch", "numpy", "opencv-python-headless")
        },
        "imports": mods,
    }


def run_pytest(result, args: list[str]) -> int:
    """``pytest args`` in this process; each test's outcome goes into ``result`` (a ResultFile) as it
    finishes, the counts at the end. SIGTERM ends the session like Ctrl-C (pytest stops cleanly)."""
    import signal

    import pytest

    def stop(signum, frame):
        result.update(status="stopped", stopped="SIGTERM (the step's time limit)")
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    tests: dict[str, str] = {}

    class Collector:
        def pytest_runtest_logreport(self, report):
            if report.when == "call" or report.outcome != "passed":
                failed = report.outcome == "failed"
                tests[report.nodeid] = "error" if failed and report.when != "call" else report.outcome
                result.update(tests=tests)

    rc = int(pytest.main(args, plugins=[Collector()]))
    counts = {k: sum(v == k for v in tests.values()) for k in ("passed", "failed", "skipped")}
    counts["errors"] = sum(v == "error" for v in tests.values())
    if result.data.get("status") != "stopped":
        result.update(status="ok" if rc in (0, 5) else "failed")
    result.update(exit_code=rc, **counts)
    return rc


def _amp_dtype(amp: str | None):
    import torch

    return getattr(torch, AMP[amp]) if amp in AMP else None


def clip_forward_backward(models: list[str], size: int, batch: int, repeats: int, amp: str | None) -> dict:
    """Frozen CLIP forward + backward to the input (the G step's CLIP pass), random weights, per model:
    median / min s per batch, images/s, peak memory above the weights, weight size and dtype."""
    import open_clip
    import torch

    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS, FrozenCLIP
    from sfd_lab.bench.core import PeakMemory
    from sfd_lab.bench.steps import frozen_weights
    from sfd_lab.timing import IterationTimer, no_gc

    open_clip.add_model_config(TINY_CLIP_CONFIGS)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = _amp_dtype(amp)
    timer = IterationTimer(device)
    rows = []
    for name in models:
        row: dict = {"model": name, "size": size, "batch": batch, "amp": amp or "fp32"}
        try:
            torch.manual_seed(0)
            clip = FrozenCLIP(name, None).to(device)
            row["weights_mb"], row["weights_dtype"] = frozen_weights(clip.clip)
            x = torch.rand(batch, 3, size, size, device=device)
            mem = PeakMemory(device)
            mem.start()
            mem.reset()
            grads = []

            def step(clip=clip, x=x, grads=grads):
                img = x.clone().requires_grad_(True)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    out = clip(img)
                    loss = sum(m.float().mean() for m in out.middle) + out.embedding.float().sum()
                loss.backward()
                grads[:] = [img.grad]

            times = []
            with no_gc():
                for i in range(repeats + 1):
                    wall, _ = timer(step)
                    if i:
                        times.append(wall)
            row["grad_finite"] = bool(torch.isfinite(grads[0]).all())
            row["peak_mem_mb"] = mem.peak_mb()
            row["median_s"], row["min_s"] = statistics.median(times), min(times)
            row["images_per_s"] = batch / row["median_s"]
            del clip, x, grads
            if device.type == "cuda":
                torch.cuda.empty_cache()
        except Exception as err:  # one model failing (e.g. out of memory) must not lose the others
            row["error"] = f"{type(err).__name__}: {err}"[:500]
        rows.append(row)
        print(json.dumps(row), flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": name, "torch": torch.__version__, "models": rows}


# -- CSUD ------------------------------------------------------------------------------------------


def _photo_batch(names: list[str], size: int, rain: bool, seed: int):
    """(N, 3, size, size) float [0, 1] centre crops of scikit-image photos; ``rain``: with bright
    vertical streaks (a stand-in for rain: this checks the machinery, not deraining)."""
    import cv2
    import numpy as np
    import torch
    import torch.nn.functional as F

    from sfd_utils.photos import load_photo

    gen = torch.Generator().manual_seed(seed)
    out = []
    for name in names:
        img = load_photo(name)
        short = min(img.shape[:2])
        if short < size:
            img = cv2.resize(img, None, fx=size / short, fy=size / short, interpolation=cv2.INTER_CUBIC)
        top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        crop = torch.from_numpy(np.ascontiguousarray(img[top : top + size, left : left + size]))
        out.append(crop.permute(2, 0, 1).float() / 255.0)
    batch = torch.stack(out)
    if rain:
        seeds = (torch.rand(batch.shape[0], 1, size, size, generator=gen) > 0.995).float()
        streaks = F.max_pool2d(seeds, kernel_size=(15, 1), stride=1, padding=(7, 0))
        batch = (batch + 0.5 * streaks).clamp(0, 1)
    return batch


def csud_check(networks: str, size: int, batch: int, iters: int, amp: str | None, image: int, tile: int) -> dict:
    """CSUDModel on this machine's device: ``iters`` training iterations under ``amp`` autocast on
    rainy / clean photo crops (from different photos, as CSUD trains); then the trained derainer,
    saved as a checkpoint, derains one ``image``² rainy photo through ``scripts/derain.py`` with
    ``--tile tile`` on the same device (the program users run). Records s/iter, whether every loss
    stayed finite and every network's weights moved, and the derain run's exit status, time and
    output size."""
    import subprocess
    import sys

    import cv2
    import numpy as np
    import torch
    from basicsr.models import build_model

    from sfd_lab.timing import IterationTimer
    from sfd_model.csud_model import AUTHORS_NETWORKS, TINY_NETWORKS, csud_options
    from sfd_utils.compat import load_plugin

    load_plugin()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = _amp_dtype(amp)
    result: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    result.update(networks=networks, size=size, batch=batch, iters=iters, amp=amp or "fp32")
    nets = AUTHORS_NETWORKS if networks == "authors" else TINY_NETWORKS
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with tempfile.TemporaryDirectory(prefix="sfd-csud-check-") as tmp:
        torch.manual_seed(0)
        model = build_model(csud_options(os.path.join(tmp, "csud"), nets, device=device.type))
        rainy = _photo_batch(["astronaut", "coffee", "rocket", "chelsea"][:batch], size, True, 1)
        clean = _photo_batch(["retina", "hubble_deep_field", "ihc", "motorcycle_left"][:batch], size, False, 2)
        model.feed_data({"rain": rainy, "clean": clean})
        before = {n: [p.detach().clone() for p in getattr(model, f"net_{n}").parameters()] for n in ("g", "t", "d")}
        timer = IterationTimer(device)
        times, finite = [], True
        for it in range(1, iters + 1):

            def step(it=it):
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    model.optimize_parameters(it)

            times.append(timer(step)[0])
            finite = finite and all(np.isfinite(float(v)) for v in model.log_dict.values())
        result["s_per_iter"] = statistics.median(times[1:] or times)  # the first pays cuDNN's autotuning
        result["losses_finite"] = finite
        result["losses_last"] = {k: float(v) for k, v in model.log_dict.items() if k.startswith("l_")}
        result["weights_moved"] = {
            n: any(not torch.equal(a, b) for a, b in zip(ps, getattr(model, f"net_{n}").parameters()))
            for n, ps in before.items()
        }
        weights = os.path.join(tmp, "net_g_check.pth")
        torch.save({"params": model.get_bare_model(model.net_g).state_dict()}, weights)
        photo = (_photo_batch(["astronaut"], image, True, 3)[0].permute(1, 2, 0).numpy() * 255).round()
        src = os.path.join(tmp, "rainy.png")
        cv2.imwrite(src, np.ascontiguousarray(photo.astype(np.uint8)[..., ::-1]))
        out_dir = os.path.join(tmp, "derained")
        cmd = [sys.executable, os.path.join(root, "scripts", "derain.py"), "-i", src, "-w", weights, "-o", out_dir]
        cmd += ["--tile", str(tile), "--device", device.type]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        outputs = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []
        derained = cv2.imread(os.path.join(out_dir, outputs[0])) if outputs else None
        result["derain"] = {
            "command": " ".join(os.path.basename(c) if os.path.isabs(c) else c for c in cmd),
            "image": [image, image, 3],
            "tile": tile,
            "returncode": proc.returncode,
            "seconds": seconds,  # the program's start-up (imports) included
            "output": None if derained is None else list(derained.shape),
            "stderr_tail": proc.stderr[-1500:] if proc.returncode else "",
        }
    d = result["derain"]
    result["ok"] = bool(
        finite and all(result["weights_moved"].values()) and d["returncode"] == 0 and d["output"] == d["image"]
    )
    return result
