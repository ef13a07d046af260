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
        for attempt in range(3):  # a run that wrote every image before the signal landed says nothing: again
            out = tmp_path / f"out_{sig.name}_{attempt}"
            cmd = [sys.executable, "scripts/inference_sr.py", "-i", str(src), "-o", str(out), "--quiet"]
            cmd += ["--arch", "SFDBicubicUpsampler", "--arch-opt", "scale=4", "--device", "cpu"]
            # A shell's background job (`make test &`) starts with SIGINT ignored, and Python then keeps
            # ignoring it: give the program the default action, as Ctrl-C in a terminal finds it.
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )  # fmt: skip
            deadline = time.time() + 240
            while time.time() < deadline and not (out.is_dir() and any(out.iterdir())):
                time.sleep(0.05)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=120)
            if not (proc.returncode == 0 and len(list(out.iterdir())) == n):
                break
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


# -- the contract by construction (issue 28) ---------------------------------------------------------------
RAISE = """
import builtins, os, sys
_target, _what = os.environ["SFD_TEST_RAISE_AT"], os.environ["SFD_TEST_RAISE"]
class _Raise:
    def find_spec(self, name, path=None, target=None):
        if name == _target:
            raise SystemExit(1) if _what == "exit1" else getattr(builtins, _what)("injected at " + name)
sys.meta_path.insert(0, _Raise())
"""


def console_scripts() -> dict[str, str]:
    """name -> "module:function" of every console script setup.py installs."""
    text = open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read()
    block = re.search(r'"console_scripts": \[(.*?)\]', text, re.S).group(1)  # not pyiqa.archs' entry
    return dict(re.findall(r'"([\w-]+)=([\w.]+:\w+)"', block))


def entry_points() -> list[tuple[str, list[str], str]]:
    """(label, command, module the program imports first) of every entry point: the scripts, the
    console scripts and the training launcher."""
    recipe = os.path.join(ROOT, "options", "demo_SR_psnr_cpu.yml")
    args = {
        "plot_pd": ["x.json"],
        "inference_sr": ["-i", "x"],
        "derain": ["-i", "x", "-w", "y"],
        "export": ["--model", "x"],
    }
    args.update({"sfd_iqa_eval": ["x", "-c", "y"], "evaluate_sr": ["--sr", "x", "--gt", "y"]})
    out = [(s, [f"scripts/{s}.py", *args.get(s, [])], runner_module(s)) for s in SCRIPTS]
    out.append(("basicsr/train.py", ["basicsr/train.py", "-opt", recipe], "basicsr.train"))
    for name, target in console_scripts().items():
        module, func = target.split(":")
        script = {"sfd-train": None}.get(
            name,
            next(
                (
                    s
                    for s in SCRIPTS
                    if f"import {func} as main"
                    in open(os.path.join(ROOT, "scripts", f"{s}.py"), encoding="utf-8").read()
                ),
                None,
            ),
        )
        argv = ["-opt", recipe] if name == "sfd-train" else args.get(script, [])
        code = f"import sys; sys.argv = [{name!r}, *{argv!r}]; from {module} import {func}; sys.exit({func}())"
        out.append((name, ["-c", code], "basicsr.train" if name == "sfd-train" else runner_module(script)))
    return out


@pytest.mark.parametrize("label, cmd, first", entry_points(), ids=[e[0] for e in entry_points()])
def test_every_entry_point_maps_the_unexpected_to_4(label, cmd, first, tmp_path):
    """A bug (an exception nobody expects) and a stray ``sys.exit(1)`` inside any entry point end in
    status 4 with the traceback, never 1 (which says: done, inputs skipped)."""
    (tmp_path / "sitecustomize.py").write_text(RAISE)
    for what in ("ZeroDivisionError", "exit1"):
        env = {
            **os.environ,
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "SFD_TEST_RAISE_AT": first,
            "SFD_TEST_RAISE": what,
        }
        proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == EXIT_FAILED, (what, proc.stderr[-2000:])
        assert "Traceback (most recent call last)" in proc.stderr
        assert ("ZeroDivisionError: injected at" if what != "exit1" else "status 1 (sys.exit)") in proc.stderr


def test_status_1_only_from_skipped_status(capsys):
    from sfd_utils.cli import skipped_status

    assert run_cli(lambda argv: skipped_status(2)) == EXIT_SKIPPED
    assert run_cli(lambda argv: skipped_status(0)) == 0 and run_cli(lambda argv: None) == 0
    for bad in (1, True, 7, "1"):
        assert run_cli(lambda argv, bad=bad: bad) == EXIT_FAILED
        assert "without naming skipped inputs" in capsys.readouterr().err
    for code, want in ((1, EXIT_FAILED), ("sfd-basicsr: cannot start: a reason", EXIT_USAGE)):

        def exits(argv, code=code):
            raise SystemExit(code)

        assert run_cli(exits) == want
    with pytest.raises(SystemExit) as passed:  # argparse's own statuses go on as they are
        run_cli(lambda argv: (_ for _ in ()).throw(SystemExit(2)))
    assert passed.value.code == EXIT_USAGE
    capsys.readouterr()
    for err in (IsADirectoryError(21, "Is a directory", "x.png"), PermissionError(13, "Permission denied", "/x")):
        assert run_cli(lambda argv, err=err: (_ for _ in ()).throw(err)) == EXIT_USAGE
        assert capsys.readouterr().err.count("\n") == 1


def test_the_traceback_also_goes_to_the_open_log_file(tmp_path, capsys):
    import logging

    log = tmp_path / "train.log"
    handler = logging.FileHandler(log)
    logger = logging.getLogger("basicsr")
    logger.addHandler(handler)
    try:
        assert run_cli(lambda argv: 1 / 0) == EXIT_FAILED
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "ZeroDivisionError" in text and "exit status 4" in text
    assert "ZeroDivisionError" in capsys.readouterr().err


def _our_sources() -> list[str]:
    roots = [
        "scripts",
        "basicsr",
        *(d for d in os.listdir(ROOT) if d.startswith("sfd_") and os.path.isdir(os.path.join(ROOT, d))),
    ]
    return sorted(
        os.path.join(dirpath, f)
        for root in roots
        for dirpath, _, names in os.walk(os.path.join(ROOT, root))
        for f in names
        if f.endswith(".py")
    )


def _runner_functions() -> set[tuple[str, str]]:
    """(module, function) of every program an entry point launches."""
    found = set()
    for path in _our_sources():
        text = open(path, encoding="utf-8").read()
        found.update(re.findall(r'launch\(\s*\w+,\s*"([\w.]+):(\w+)"', text))
    return found | {("sfd_utils.launcher", "train_pipeline"), ("sfd_utils.launcher", "main")}


def test_no_code_path_exits_1():
    """Exit status 1 comes only from ``skipped_status``: no ``sys.exit(1)``, ``SystemExit(1)``, ``exit(1)``
    or ``os._exit(1)`` anywhere, no program returns a literal 1, and only sfd_utils.cli names EXIT_SKIPPED."""
    import ast

    exits = {"exit", "_exit", "SystemExit", "quit"}
    problems = []
    runners = _runner_functions()
    assert len(runners) >= 20
    for path in _our_sources():
        rel = os.path.relpath(path, ROOT)
        tree = ast.parse(open(path, encoding="utf-8").read(), rel)
        module = rel[:-3].replace(os.sep, ".")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in exits:
                if node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in (1, True):
                    problems.append(f"{rel}:{node.lineno} exits with 1")
            if isinstance(node, ast.Name) and node.id == "EXIT_SKIPPED" and rel != os.path.join("sfd_utils", "cli.py"):
                problems.append(f"{rel}:{node.lineno} names EXIT_SKIPPED (use skipped_status)")
            if isinstance(node, ast.FunctionDef) and (module, node.name) in runners:
                for ret in ast.walk(node):
                    value = getattr(ret, "value", None) if isinstance(ret, ast.Return) else None
                    branches = [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
                    if any(isinstance(b, ast.Constant) and b.value in (1, True) for b in branches):
                        problems.append(f"{rel}:{ret.lineno} {node.name} returns 1")
    assert not problems, "\n".join(problems)
