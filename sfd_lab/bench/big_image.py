"""Peak memory of tiled SR inference on one big photo (``scripts/bench_big_image.py``).

Runs ``scripts/inference_sr.py`` in a subprocess on a W×H image (a scikit-image photo mirrored to
size, so it compresses and upscales like a photo, not like noise), with ``--tile`` and ``--device
cpu``, and reads the child's peak resident memory from ``wait4`` (``ru_maxrss``, the same figure as
``VmHWM``). Each case also runs once untiled (``--tile 0``) on one padded tile's worth of image,
(tile + 2·pad)² pixels: that peak is the *baseline* (interpreter, torch, basicsr, the model and its
working memory on one tile). The promise checked is

    peak <= baseline + 2 × output array          (output array = uint8 H·s × W·s × 3)

i.e. beyond the model, memory holds the output and at most as much again (tiles, the encoder).

The baseline itself depends on the network: ``--working-tiles`` also measures, per case and tile
size, the *working memory of one tile* = peak RSS on one padded tile run untiled minus the peak RSS
on a 16×16 input (interpreter, torch, basicsr and the weights, with a negligible forward). Cases:
``bicubic`` (parameter-free, SFDBicubicUpsampler), ``rrdb`` (a tiny RRDBNet: 8 features, 1 block)
and ``rrdb23`` (the full-size RRDBNet ×scale of the recipes: 64 features, 23 blocks, growth 32,
random weights; memory does not depend on the weights).
``--before-root`` runs the same cases with another checkout (e.g. the commit before streaming
tiles) for comparison. A watchdog kills a child whose RSS passes ``--rss-limit-gb`` (default: the
memory available at start minus 3 GB), so a measurement never pushes the machine into swap or the
OOM killer; such a case is reported as stopped at the limit. Times are wall clock on a shared
machine: indicative only.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from sfd_utils.cli import EXIT_FAILED, EXIT_OK

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_RRDB = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
FULL_RRDB = {"num_feat": 64, "num_block": 23, "num_grow_ch": 32}  # the recipes' RRDBNet-23
CASES = ("bicubic", "rrdb", "rrdb23")
FLOOR_SIDE = 16  # the input of the floor run: the process with the model loaded, a negligible forward
TILE_PAD = 10  # inference_sr.py's default --tile-pad


def meminfo_kb(key: str = "MemAvailable") -> int | None:
    """A ``/proc/meminfo`` field in kB (Linux), None elsewhere."""
    from sfd_lab.bench.core import proc_field_kb

    return proc_field_kb("/proc/meminfo", key)


def _rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss(cmd: list[str], env: dict, cwd: str, limit_bytes: int | None = None) -> dict:
    """Run ``cmd``; return {returncode, peak_rss_bytes, seconds, killed_at_limit, stderr_tail}.

    The peak is the child's ``ru_maxrss`` from ``os.wait4`` (the high-water mark of its resident
    set, kB on Linux). With ``limit_bytes`` a watchdog samples VmRSS every 0.1 s and kills the child
    when it passes the limit.
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        killed = threading.Event()
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.1):
                rss = _rss_kb(proc.pid)
                if limit_bytes and rss is not None and rss * 1024 > limit_bytes:
                    killed.set()
                    os.kill(proc.pid, signal.SIGKILL)
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
    return {
        "returncode": proc.returncode,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "seconds": round(time.perf_counter() - t0, 1),
        "killed_at_limit": killed.is_set(),
        "stderr_tail": tail,
    }


def write_photo(path: str, width: int, height: int, photo: str = "astronaut") -> str:
    """A scikit-image photo mirrored (``np.pad`` symmetric) to ``width`` × ``height``, saved as PNG."""
    import cv2

    from sfd_utils.photos import load_photo

    img = load_photo(photo)[:, :, ::-1]  # RGB -> OpenCV's BGR
    h, w = img.shape[:2]
    reps = np.pad(img, ((0, max(height - h, 0)), (0, max(width - w, 0)), (0, 0)), mode="symmetric")
    if not cv2.imwrite(path, np.ascontiguousarray(reps[:height, :width])):
        raise OSError(f"cannot write {path}")
    return path


def write_rrdb(path: str, scale: int, size: dict | None = None) -> str:
    """A randomly initialised RRDBNet checkpoint (BasicSR ``{'params': ...}``), tiny by default; written
    once per path."""
    if os.path.isfile(path):
        return path
    import torch
    from basicsr.archs.rrdbnet_arch import RRDBNet

    torch.manual_seed(0)
    torch.save({"params": RRDBNet(3, 3, scale=scale, **(size or TINY_RRDB)).state_dict()}, path)
    return path


def write_tiny_rrdb(path: str, scale: int) -> str:
    """A randomly initialised tiny RRDBNet checkpoint; the ``rrdb`` case."""
    return write_rrdb(path, scale, TINY_RRDB)


def case_args(case: str, scale: int, work: str) -> list[str]:
    """Command-line arguments naming the network of a case (``bicubic``, ``rrdb``, ``rrdb23``)."""
    if case == "bicubic":
        return ["--arch", "SFDBicubicUpsampler", "--arch-opt", f"scale={scale}"]
    if case == "rrdb":
        return ["--model", write_tiny_rrdb(os.path.join(work, f"tiny_rrdb_x{scale}.pth"), scale)]
    if case == "rrdb23":  # the architecture is read from the checkpoint (23 blocks)
        return ["--model", write_rrdb(os.path.join(work, f"rrdb23_x{scale}.pth"), scale, FULL_RRDB)]
    raise ValueError(f"unknown case {case!r} ({', '.join(CASES)})")


def working_memory(code_root: str, case: str, scale: int, tiles: list[int], work: str, limit) -> list[dict]:
    """Per tile size: peak RSS of one padded tile (tile + 2·pad square, run untiled) minus the floor (the
    same network on a 16×16 input): the working memory one tile of this network needs."""
    env = {**os.environ, "PYTHONPATH": code_root, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    script = os.path.join(code_root, "scripts", "inference_sr.py")
    base = [sys.executable, script, "--device", "cpu", "--quiet", "--tile", "0", *case_args(case, scale, work)]
    out = os.path.join(work, "out_working")
    floor_img = write_photo(os.path.join(work, f"floor_{FLOOR_SIDE}.png"), FLOOR_SIDE, FLOOR_SIDE)
    floor = peak_rss([*base, "-i", floor_img, "-o", out], env, code_root, limit)
    rows = []
    for tile in tiles:
        side = tile + 2 * TILE_PAD
        img = write_photo(os.path.join(work, f"tile_{side}.png"), side, side)
        one = peak_rss([*base, "-i", img, "-o", out], env, code_root, limit)
        rows.append(
            {
                "case": case,
                "scale": scale,
                "tile": tile,
                "tile_input": f"{side}×{side}",
                "floor_rss_bytes": floor["peak_rss_bytes"],
                "tile_rss_bytes": one["peak_rss_bytes"],
                "working_bytes": one["peak_rss_bytes"] - floor["peak_rss_bytes"],
                "tile_output_array_bytes": (side * scale) ** 2 * 3,
                "returncode": one["returncode"] or floor["returncode"],
                "killed_at_limit": one["killed_at_limit"] or floor["killed_at_limit"],
                "seconds": one["seconds"],
                "stderr_tail": (one["stderr_tail"] if one["returncode"] else floor["stderr_tail"])
                if (one["returncode"] or floor["returncode"])
                else [],
            }
        )
    return rows


def run_case(
    code_root: str, case: str, image: str, small: str, size: tuple[int, int], scale: int, tile: int, work: str, limit
) -> dict:
    """Baseline (``small``: one padded tile, run untiled) and big-image peak RSS of one network with the
    code at ``code_root``."""
    env = {**os.environ, "PYTHONPATH": code_root, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    script = os.path.join(code_root, "scripts", "inference_sr.py")
    base = [sys.executable, script, "--device", "cpu", "--quiet", *case_args(case, scale, work)]
    out = os.path.join(work, "out")
    baseline = peak_rss([*base, "--tile", "0", "-i", small, "-o", out], env, code_root, limit)
    big = peak_rss([*base, "--tile", str(tile), "-i", image, "-o", out], env, code_root, limit)
    for name in os.listdir(out):  # the big output (GBs): gone before the next case
        os.remove(os.path.join(out, name))
    w, h = size
    out_bytes = w * scale * h * scale * 3
    bound = baseline["peak_rss_bytes"] + 2 * out_bytes
    return {
        "case": case,
        "width": w,
        "height": h,
        "scale": scale,
        "tile": tile,
        "output_array_bytes": out_bytes,
        "baseline_rss_bytes": baseline["peak_rss_bytes"],
        "peak_rss_bytes": big["peak_rss_bytes"],
        "bound_bytes": bound,
        "over_baseline_per_output": round((big["peak_rss_bytes"] - baseline["peak_rss_bytes"]) / out_bytes, 3),
        "within_bound": big["returncode"] == 0 and big["peak_rss_bytes"] <= bound,
        "returncode": big["returncode"],
        "killed_at_limit": big["killed_at_limit"],
        "seconds": big["seconds"],
        "stderr_tail": big["stderr_tail"] if big["returncode"] else [],
    }


def _gb(n: float) -> str:
    return f"{n / 2**30:.2f}"


def to_markdown(res: dict) -> str:
    lines = [
        "# Peak memory of tiled SR inference on one big image",
        "",
        f"{' then '.join(f'`{c}`' for c in res.get('commands') or [res['command']])} on {res['machine']}, "
        f"{res['date']}. Input: {res['input']}. Peak RSS of the "
        "`scripts/inference_sr.py` process (`ru_maxrss` from wait4); baseline = the same network run untiled on "
        f"one padded tile, {res.get('baseline_input', '64×64')} (interpreter + torch + model + one tile's "
        "working memory). Bound = baseline + 2 × output array (uint8, 3 channels).",
        "",
        "| code | network | input | output array GB | baseline GB | peak GB | bound GB | (peak − baseline) / output "
        "| within bound | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        peak = _gb(r["peak_rss_bytes"]) + (" (stopped at the limit)" if r["killed_at_limit"] else "")
        baseline = _gb(r["baseline_rss_bytes"]) + (f" ({r['baseline_input']})" if r.get("baseline_input") else "")
        if r["returncode"] and not r["killed_at_limit"]:
            peak += f" (exit {r['returncode']})"
        lines.append(
            f"| {r['code']} | {r['case']} | {r['width']}×{r['height']} ×{r['scale']} tile {r['tile']} | "
            f"{_gb(r['output_array_bytes'])} | {baseline} | {peak} | {_gb(r['bound_bytes'])} | "
            f"{r['over_baseline_per_output']} | {'yes' if r['within_bound'] else 'no'} | {r['seconds']} |"
        )
    if res.get("working"):
        lines += [
            "",
            "## Working memory of one tile, per network",
            "",
            f"Peak RSS of `scripts/inference_sr.py --tile 0` on one padded tile (tile + 2·{TILE_PAD} square) "
            f"minus its peak RSS on a {FLOOR_SIDE}×{FLOOR_SIDE} input (the process with the network loaded). "
            "Tiled inference of an image of any size needs about this much on top of the floor, the output "
            "array and the bound's margin.",
            "",
            "| network | scale | tile (input) | floor GB | one tile GB | working memory MB | "
            "tile's uint8 output MB | wall s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in res["working"]:
            note = f" (exit {r['returncode']})" if r["returncode"] else ""
            lines.append(
                f"| {r['case']} | ×{r['scale']} | {r['tile']} ({r['tile_input']}) | {_gb(r['floor_rss_bytes'])} | "
                f"{_gb(r['tile_rss_bytes'])}{note} | {r['working_bytes'] / 2**20:.0f} | "
                f"{r['tile_output_array_bytes'] / 2**20:.1f} | {r['seconds']} |"
            )
    lines += ["", "Wall times are from a shared 2-core machine and only indicative.", ""]
    return "\n".join(lines)


def run_big_image(a) -> int:
    """``scripts/bench_big_image.py``: the namespace of :func:`sfd_lab.bench.cli.big_image_parser`."""

    available = meminfo_kb()
    limit = int(a.rss_limit_gb * 2**30) if a.rss_limit_gb else (available * 1024 - 3 * 2**30 if available else None)
    runs = []
    if a.before_root and a.only != "after":
        runs.append(("before", os.path.abspath(a.before_root), a.before_size or a.size, a.before_cases or a.cases))
    if a.only != "before":
        runs.append(("after", ROOT, a.size, a.cases))
    rows, commands, working = [], [], []
    if a.merge:
        with open(a.merge) as f:
            merged = json.load(f)
        rows, commands = merged["rows"], merged.get("commands") or [merged["command"]]
        working = merged.get("working") or []
    measured = []
    with tempfile.TemporaryDirectory(prefix="big_image_") as work:
        side = a.tile + 2 * TILE_PAD
        small = write_photo(os.path.join(work, "small.png"), side, side)
        images = {}
        for label, root, size, cases in runs:
            if size not in images:
                images[size] = write_photo(os.path.join(work, f"big_{size[0]}x{size[1]}.png"), *size)
            for case in cases:
                print(f"{label}: {case} {size[0]}x{size[1]} x{a.scale} tile {a.tile} ...", flush=True)
                row = {
                    "code": label,
                    "code_root": root,
                    **run_case(root, case, images[size], small, size, a.scale, a.tile, work, limit),
                }
                print(
                    f"  peak {_gb(row['peak_rss_bytes'])} GB, bound {_gb(row['bound_bytes'])} GB, "
                    f"exit {row['returncode']}, {row['seconds']} s",
                    flush=True,
                )
                row["baseline_input"] = f"{side}×{side}, --tile 0"
                rows.append(row)
                measured.append(row)
        for case in a.cases if a.working_tiles else ():
            print(f"working memory: {case} x{a.scale} tiles {a.working_tiles} ...", flush=True)
            for row in working_memory(ROOT, case, a.scale, a.working_tiles, work, limit):
                print(f"  tile {row['tile']}: {row['working_bytes'] / 2**20:.0f} MB, {row['seconds']} s", flush=True)
                working.append(row)
                measured.append(row)
    command = " ".join(["scripts/bench_big_image.py", *sys.argv[1:]])
    res = {
        "command": command,
        "commands": [*commands, command],
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {_gb((meminfo_kb('MemTotal') or 0) * 1024)} GB RAM",
        "date": time.strftime("%Y-%m-%d"),
        "input": "scikit-image 'astronaut' mirrored to size (PNG)",
        "baseline_input": f"{side}×{side}, --tile 0",
        "rss_limit_bytes": limit,
        "rows": rows,
        "working": working,
    }
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, a.name or f"big_image-cpu-{res['date']}")
    with open(stem + ".json", "w") as f:
        json.dump(res, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(to_markdown(res))
    print(f"wrote {stem}.json and {stem}.md")
    failed = [r for r in measured if r["returncode"] and not r["killed_at_limit"]]
    for r in failed:  # the verdict on the bound is in the report; a crashed measurement is a failed run
        print(
            f"error: {r['case']} tile {r['tile']} exited {r['returncode']}: {' '.join(r['stderr_tail'])}",
            file=sys.stderr,
        )
    return EXIT_FAILED if failed else EXIT_OK
