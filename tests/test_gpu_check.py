"""The GPU check (issue 18): its CPU rehearsal runs every step of scripts/gpu_check.sh at tiny sizes,
including installing carried wheels, so the first GPU run cannot fail on a typo; failing, timed-out and
budget-skipped steps are recorded without stopping the others."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT

from sfd_gpu_check.report import summarise_benchmark
from sfd_gpu_check.run import STEPS, Runner

SCRIPT = os.path.join(ROOT, "scripts", "gpu_check.sh")


def make_wheel(folder, name: str = "sfd_gpu_check_probe", version: str = "1.0") -> str:
    """A minimal valid wheel holding ``<name>.py`` (VALUE = 42), to rehearse the wheel install."""
    files = {
        f"{name}.py": b"VALUE = 42\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    path = os.path.join(folder, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        for p, data in files.items():
            z.writestr(p, data)
        z.writestr(f"{name}-{version}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def run_script(tmp_path, *extra: str) -> tuple[int, str]:
    cmd = ["bash", SCRIPT, "--cpu", "--python", sys.executable, "--out", str(tmp_path / "out")]
    cmd += ["--work", str(tmp_path / "work"), "--site", str(tmp_path / "site"), *extra]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=900)
    return out.returncode, out.stdout + out.stderr


def report_file(tmp_path, ext: str) -> str:
    """The check's own report (not a step's copied benchmark file) in ``<tmp>/out``."""
    pattern = re.compile(r"gpu-check-cpu-rehearsal-\d{4}-\d{2}-\d{2}" + re.escape(ext) + "$")
    (name,) = [f for f in os.listdir(tmp_path / "out") if pattern.fullmatch(f)]
    return str(tmp_path / "out" / name)


def report_of(tmp_path) -> dict:
    with open(report_file(tmp_path, ".json")) as f:
        return json.load(f)


def test_cpu_rehearsal_runs_every_step(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    make_wheel(str(wheels))
    rc, log = run_script(tmp_path, "--wheels", str(wheels))
    assert rc == 0, log[-6000:]
    assert (tmp_path / "site" / "sfd_gpu_check_probe.py").is_file()  # the carried wheel was installed
    report = report_of(tmp_path)
    assert report["meta"]["mode"] == "cpu" and report["meta"]["setup"].startswith("ok: 1 wheels installed")
    steps = {s["step"]: s for s in report["steps"]}
    assert tuple(steps) == STEPS and report["failed"] == []
    assert all(s["status"] == "ok" for s in steps.values()), {k: s.get("tail") for k, s in steps.items()}
    assert steps["env"]["result"]["imports"]["basicsr"] == "ok"
    gan = steps["gan_step"]["result"]["gan_step"]
    assert {"realesrgan_unet", "sfd_tiny-rn", "sfd_tiny-vit"} <= set(gan["configs"])
    assert gan["configs"]["sfd_tiny-rn"]["frozen_clip_dtype"] == "float32"
    assert steps["iqa"]["result"]["iqa"]["images_per_s"]
    extra = steps["bench_extra"]["result"]
    assert set(extra) >= {"clip_cost", "precision", "components"}
    assert "CLIP SR fwd+bwd [tiny-rn]" in extra["components"]["ms_and_share"]["sfd_tiny-rn"]
    clip = steps["clip_full"]["result"]["models"]
    assert [r["model"] for r in clip] == ["tiny-rn", "tiny-vit"]
    assert all(r["grad_finite"] and r["amp"] == "bf16" and r["median_s"] > 0 for r in clip)
    assert steps["ddp"]["result"] == {"world_size_2": True, "checkpoint": True, "backend": "gloo"}
    out = sorted(os.listdir(tmp_path / "out"))
    for step in ("gan_step", "iqa", "bench_extra"):  # each benchmark step's full tables beside the report
        assert any(f.endswith(f"-{step}.md") for f in out) and any(f.endswith(f"-{step}.json") for f in out)
    md = open(report_file(tmp_path, ".md")).read()
    assert "CPU rehearsal" in md and "DDP smoke (gloo)" in md and "Full-size CLIP" in md
    assert "GPU check (cpu)" in log  # the printed summary


def test_broken_wheel_and_no_budget_are_recorded(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    (wheels / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    rc, log = run_script(tmp_path, "--wheels", str(wheels), "--budget", "0")
    assert rc == 1, log[-3000:]
    report = report_of(tmp_path)
    assert report["meta"]["setup"].startswith("failed: pip install")
    assert report["failed"] == ["setup"]
    assert all(s["status"] == "skipped" and s["reason"] == "no time left in the budget" for s in report["steps"])


def test_runner_records_failures_and_timeouts(tmp_path):
    runner = Runner(str(tmp_path), budget_s=60, mode="cpu")
    bad = runner.run("bad", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], 30)
    assert bad["status"] == "failed" and bad["rc"] == 3 and "boom" in bad["tail"]
    slow = runner.run("slow", [sys.executable, "-c", "import time; time.sleep(30)"], 6)
    assert slow["status"] == "timeout" and slow["rc"] is None
    good = runner.run("good", [sys.executable, "-c", "print('fine')"], 30)
    assert good["status"] == "ok" and open(tmp_path / good["log"]).read() == "fine\n"
    runner.deadline = 0
    assert runner.run("late", [sys.executable, "-c", "pass"], 30)["status"] == "skipped"


def test_unknown_argument_is_named():
    out = subprocess.run(["bash", SCRIPT, "--gpus", "2"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "unknown argument '--gpus'" in out.stderr


@pytest.mark.parametrize("verdict", ["met", "unstable"])
def test_summarise_benchmark(verdict):
    bench = {
        "meta": {"device": "NVIDIA H200", "profile": {"name": "gpu"}},
        "rows": {
            "gan_step": {
                "status": "ok",
                "configs": [{"name": "sfd_RN50", "median_s": 0.2, "spread": 0.05, "frozen_clip_dtype": "bfloat16"}],
                "targets": [{"what": "t", "value": 0.7, "target": "<= 0.75", "met": None, "verdict": verdict}],
            }
        },
    }
    s = summarise_benchmark(bench)
    assert s["gan_step"]["configs"]["sfd_RN50"] == {"median_s": 0.2, "spread": 0.05, "frozen_clip_dtype": "bfloat16"}
    assert s["gan_step"]["targets"][0]["verdict"] == verdict and s["profile"] == "gpu"
