"""One exit-status contract for every script and the training launcher (sfd_utils.cli.EXIT_CODES):
0 all done; 1 done with skipped inputs, each named; 2 bad arguments or input, or nothing to do;
3 interrupted (Ctrl-C, SIGTERM); 4 failed otherwise. Stated in every --help, tested per script."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, photo

from sfd_utils.cli import EXIT_CODES, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_SKIPPED, EXIT_USAGE, run_cli

SCRIPTS = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "scripts")) if f.endswith(".py"))
INTERRUPT = """
import os, sys
_target = os.environ["SFD_TEST_INTERRUPT_AT"]
class _Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == _target:
            raise KeyboardInterrupt
sys.meta_path.insert(0, _Interrupt())
"""


def load_script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runner_module(script: str) -> str:
    """The program module a thin script launches (``launch(parser, "package.module:function")``)."""
    text = open(os.path.join(ROOT, "scripts", f"{script}.py"), encoding="utf-8").read()
    found = re.search(r'launch\(\s*\w+,\s*"([\w.]+):', text)
    if found is None:  # the script runs a console script's function: ``from pkg.cli import x_main as main``
        module, func = re.search(r"from ([\w.]+) import (\w+_main)", text).groups()
        source = inspect.getsource(getattr(importlib.import_module(module), func))
        found = re.search(r'launch\(\s*\w+,\s*"([\w.]+):', source)
    return found.group(1)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_states_the_contract(script):
    proc = subprocess.run([sys.executable, f"scripts/{script}.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())  # argparse may re-wrap the epilog
    assert "exit status:" in text
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {meaning}" in text, (script, code)


@pytest.mark.parametrize("script", SCRIPTS)
def test_interrupted_is_3_and_a_bad_option_is_2(script, tmp_path):
    """Ctrl-C while the program starts (raised as its module is imported): one line, status 3."""
    (tmp_path / "sitecustomize.py").write_text(INTERRUPT)
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "SFD_TEST_INTERRUPT_AT": runner_module(script),
    }
    argv = {"plot_pd": ["x.json"], "inference_sr": ["-i", "x"], "derain": ["-i", "x", "-w", "y"]}.get(script, [])
    argv += {"sfd_iqa_eval": ["x", "-c", "y"], "evaluate_sr": ["--sr", "x", "--gt", "y"]}.get(script, [])
    argv += {"export": ["--model", "x.pth"]}.get(script, [])
    proc = subprocess.run(
        [sys.executable, f"scripts/{script}.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == EXIT_INTERRUPTED, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == ["interrupted: outputs written so far are kept"]
    proc = subprocess.run([sys.executable, f"scripts/{script}.py", "--no-such-option"], cwd=ROOT, capture_output=True)
    assert proc.returncode == EXIT_USAGE


def test_launcher_interrupted_is_3(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(INTERRUPT)
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "SFD_TEST_INTERRUPT_AT": "basicsr.train",
    }
    recipe = os.path.join(ROOT, "options", "demo_SR_psnr_cpu.yml")
    proc = subprocess.run(
        [sys.executable, "basicsr/train.py", "-opt", recipe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == EXIT_INTERRUPTED, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("sfd-basicsr: interrupted")


@pytest.mark.parametrize(
    "raised, code",
    [("CheckpointError", EXIT_USAGE), ("NonFiniteLossError", EXIT_FAILED), ("KeyboardInterrupt", EXIT_INTERRUPTED)],
)
def test_launcher_maps_its_stops_to_the_contract(raised, code, monkeypatch, capsys):
    import basicsr.train as bt
    from sfd_utils.checkpoint import CheckpointError
    from sfd_utils.launcher import prepare_basicsr, train_pipeline
    from sfd_utils.resume import NonFiniteLossError

    prepare_basicsr()
    error = {"CheckpointError": CheckpointError, "NonFiniteLossError": NonFiniteLossError}.get(
        raised, KeyboardInterrupt
    )

    def stop(root):
        raise error("stopped here")

    monkeypatch.setattr(bt, "train_pipeline", stop)
    monkeypatch.setattr(sys, "argv", ["train.py", "-opt", os.path.join(ROOT, "options", "demo_SR_psnr_cpu.yml")])
    with pytest.raises(SystemExit) as exit_:
        train_pipeline(ROOT)
    assert exit_.value.code == code
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("sfd-basicsr: ")


def test_an_unexpected_error_is_4_with_its_traceback(capsys):
    def broken(argv):
        raise ZeroDivisionError("a bug")

    assert run_cli(broken) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err and "exit status 4" in err


def test_real_signals_end_inference_with_3(tmp_path):
    """SIGINT and SIGTERM while images are being written: status 3, one line, written files kept."""
    src = tmp_path / "in"
    src.mkdir()
    n = 300  # enough work (x4 to 1024², PNG-encoded) that the signal lands mid-run on any machine
    for i in range(n):
        cv2.imwrite(
            str(src / f"{i:03d}.png"), np.ascontiguousarray(photo("astronaut")[:256, i % 200 : i % 200 + 256, ::-1])
        )
    for sig in (signal.SIGINT, signal.SIGTERM):
        out = tmp_path / f"out_{sig.name}"
        cmd = [sys.executable, "scripts/inference_sr.py", "-i", str(src), "-o", str(out), "--quiet"]
        cmd += ["--arch", "SFDBicubicUpsampler", "--arch-opt", "scale=4", "--device", "cpu"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 240
        while time.time() < deadline and not (out.is_dir() and any(out.iterdir())):
            time.sleep(0.2)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == EXIT_INTERRUPTED, err[-2000:]
        assert err.strip().splitlines()[-1] == "interrupted: outputs written so far are kept"
        assert 0 < len(list(out.iterdir())) < n


# -- skipped inputs: 1, each named; nothing to do: 2 -----------------------------------------------------
def images(folder, n=2, broken=("broken.png",)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(
            str(folder / f"img{i}.png"), np.ascontiguousarray(photo("chelsea")[10 * i : 10 * i + 64, 30:94, ::-1])
        )
    for name in broken:
        (folder / name).write_bytes(b"not an image")
    return str(folder)


def test_inference_sr_skipped_1_none_2(tmp_path, capsys):
    bicubic = ["--arch", "SFDBicubicUpsampler", "--arch-opt", "scale=2", "--quiet", "--device", "cpu"]
    main = load_script("inference_sr").main
    assert main(["-i", images(tmp_path / "a"), "-o", str(tmp_path / "oa"), *bicubic]) == EXIT_SKIPPED
    assert "broken.png" in capsys.readouterr().out
    only_broken = images(tmp_path / "b", n=0, broken=("x.png", "y.png"))
    assert main(["-i", only_broken, "-o", str(tmp_path / "ob"), *bicubic]) == EXIT_USAGE
    assert "none of the 2 image(s) could be upscaled" in capsys.readouterr().err


def test_sfd_iqa_eval_skipped_is_1_and_named(tiny_clip_files, tmp_path, capsys):
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator

    torch.manual_seed(0)
    disc = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=8)
    torch.save({"params": disc.state_dict()}, tmp_path / "net_d.pth")
    argv = [images(tmp_path / "in"), "-c", str(tmp_path / "net_d.pth"), "--tile", "64", "-o", str(tmp_path / "o")]
    assert load_script("sfd_iqa_eval").main([*argv, "--quiet", "--no-plot"]) == EXIT_SKIPPED
    assert (
        "skipped" in capsys.readouterr().err
        and "broken.png" in capsys.readouterr().err + open(tmp_path / "o" / "scores.json").read()
    )


def test_evaluate_sr_left_out_is_1(tmp_path, capsys):
    sr, gt = images(tmp_path / "sr", broken=()), images(tmp_path / "gt", n=3, broken=())
    argv = ["--sr", sr, "--gt", gt, "--metrics", "psnr", "--quiet", "--out", str(tmp_path / "o"), "--scale", "1"]
    assert load_script("evaluate_sr").main(argv) == EXIT_SKIPPED  # img2 of gt has no SR: listed
    assert "img2" in capsys.readouterr().out


def test_derain_skipped_1_none_2(tmp_path, capsys):
    from sfd_arch.nafnet_arch import CSUDNAFNet

    torch.manual_seed(0)
    net = CSUDNAFNet(width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])
    torch.save({"params": net.state_dict()}, tmp_path / "net_g.pth")
    main = load_script("derain").main
    argv = ["-w", str(tmp_path / "net_g.pth"), "--device", "cpu"]
    assert main(["-i", images(tmp_path / "rain"), "-o", str(tmp_path / "o"), *argv]) == EXIT_SKIPPED
    assert "broken.png" in capsys.readouterr().out
    only_broken = images(tmp_path / "bad", n=0, broken=("x.png",))
    assert main(["-i", only_broken, "-o", str(tmp_path / "o2"), *argv]) == EXIT_USAGE
    assert "none of the 1 input image(s) could be derained" in capsys.readouterr().err
