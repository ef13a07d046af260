"""Odd inputs to every program (issue 28): each is a named skip (exit 1 beside a good image, 2 when
nothing was usable) or one line and exit 2, never a traceback, never above 2 GB of memory, and
nothing is written outside the output root.

The image files: a PNG whose header claims 100000², a real PNG bomb (1.2 MB decoding to 1.2 GB), a
GIF of 65535 frames, a folder named ``x.png``, a symlink loop, a sparse 8 GB file, text named
``.png``; beside them a good image and a good image whose file name is not UTF-8 (processed). The
weights: a pickle, a safetensors file whose metadata is nested 10 000 levels, one whose metadata
names a network of 1.9 G parameters (7.4 GB).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, photo

from sfd_lab.checks import odd_files as odd
from sfd_lab.checks.peak_memory import run_measured
from sfd_utils.cli import EXIT_SKIPPED, EXIT_USAGE

MEMORY_MB = 2048
# odd file -> what its skip line says
ODD_IMAGES = {
    "claims.png": "PNG header declares 100000x100000",
    "bomb.png": "PNG header declares 20000x20000 = 400.0 Mpx, over the 67.1 Mpx limit",
    "frames.png": "GIF declares over 1024 frames",
    "x.png": "a folder, not a file",
    "loop_a.png": "symbolic link loop",
    "sparse.png": "8.6 GB, over the 553.6 MB limit",
    "notes.png": "not an image",
}
GOOD = ("good.png", "caf\\xe9.png")  # as printed: the second name is Latin-1, not UTF-8


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bgr(h: int = 40, w: int = 56) -> np.ndarray:
    return np.ascontiguousarray(photo("chelsea")[60 : 60 + h, 100 : 100 + w, ::-1])


def odd_folder(folder, good: bool = True) -> str:
    """Every odd image of ODD_IMAGES (and, with ``good``, the two good ones) in ``folder``."""
    os.makedirs(folder, exist_ok=True)
    d = str(folder)
    odd.png_claiming(os.path.join(d, "claims.png"))
    odd.png_bomb(os.path.join(d, "bomb.png"), 20_000)
    odd.gif_frames(os.path.join(d, "frames.png"))
    odd.folder_named(os.path.join(d, "x.png"))
    odd.symlink_loop(d)
    odd.sparse_file(os.path.join(d, "sparse.png"))
    odd.text_file(os.path.join(d, "notes.png"))
    if good:
        odd.write_png(os.path.join(d, "good.png"), bgr())
        odd.write_png(odd.not_utf8_name(d), bgr())
    return d


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_clip_files):
    """The odd folder, a GT folder with a good image under every name, and real tiny checkpoints."""
    from sfd_arch.nafnet_arch import CSUDNAFNet
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator

    root = tmp_path_factory.mktemp("odd")
    src = odd_folder(root / "in")
    gt = root / "gt"
    gt.mkdir()
    for name in os.listdir(os.fsencode(src)):
        odd.write_png(os.fsdecode(os.path.join(os.fsencode(str(gt)), name)), bgr())
    torch.manual_seed(0)
    disc = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=8)
    torch.save({"params": disc.state_dict()}, root / "net_d.pth")
    derainer = CSUDNAFNet(width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])
    torch.save({"params": derainer.state_dict()}, root / "net_g.pth")
    return {"root": root, "in": src, "gt": str(gt), "net_d": str(root / "net_d.pth"), "net_g": str(root / "net_g.pth")}


def program_argv(script: str, files: dict, src: str, out: str) -> list[str]:
    return {
        "inference_sr": ["-i", src, "-o", out, "--arch", "SFDBicubicUpsampler", "--arch-opt", "scale=2", "--quiet"],
        "evaluate_sr": ["--sr", src, "--gt", files["gt"], "--metrics", "psnr", "--scale", "1", "--out", out, "--quiet"],
        "sfd_iqa_eval": [src, "-c", files["net_d"], "--tile", "64", "-o", out, "--quiet", "--no-plot"],
        "derain": ["-i", src, "-w", files["net_g"], "-o", out, "--device", "cpu"],
    }[script]


def written(out: str) -> set[bytes]:
    return set(os.listdir(os.fsencode(out)))


@pytest.mark.parametrize("script", ["inference_sr", "evaluate_sr", "sfd_iqa_eval", "derain"])
def test_odd_images_are_named_skips_in_little_memory(script, files, tmp_path):
    out = str(tmp_path / "out")
    cmd = [sys.executable, f"scripts/{script}.py", *program_argv(script, files, files["in"], out)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    run = run_measured(cmd, cwd=ROOT, env=env, kill_mb=MEMORY_MB + 500, timeout=400)
    text = run.stdout + run.stderr
    assert run.code == EXIT_SKIPPED, (run.killed, text[-3000:])
    assert "Traceback" not in text and run.peak_mb < MEMORY_MB, run.peak_mb
    for name, why in ODD_IMAGES.items():
        line = next((ln for ln in text.splitlines() if name in ln and why in ln), None)
        assert line is not None, (name, why, text[-3000:])
    if script == "inference_sr":
        assert written(out) == {b"good_out.png", b"caf\xe9_out.png"}
    elif script == "derain":
        assert written(out) == {b"good.png", b"caf\xe9.png"}
    elif script == "evaluate_sr":
        result = json.load(open(os.path.join(out, "in.json")))
        assert result["count"] == 2 and len(result["problems"]["unreadable"]) == len(ODD_IMAGES) + 1  # loop_b too
    else:
        assert json.load(open(os.path.join(out, "scores.json")))["n_scored"] == 2


@pytest.mark.parametrize("script", ["inference_sr", "evaluate_sr", "sfd_iqa_eval", "derain"])
def test_nothing_usable_is_2_in_one_line(script, files, tmp_path, capsys):
    src = odd_folder(tmp_path / "only_odd", good=False)
    argv = program_argv(script, files, src, str(tmp_path / "out"))
    if script == "evaluate_sr":
        argv[argv.index("--gt") + 1] = src  # every pair unreadable
    assert load_script(script).main(argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "Traceback" not in "\n".join(err)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("weights")
    return {
        "pickle": (odd.pickled_weights(d / "pickled.pth"), "weights-only"),
        "deep metadata": (odd.deep_metadata_safetensors(d / "deep.safetensors"), "nested 10000 levels deep"),
        "huge network": (odd.huge_network_safetensors(d / "huge.safetensors"), "more than the 16,777,217"),
    }


@pytest.mark.parametrize("kind", ["pickle", "deep metadata", "huge network"])
def test_bad_weights_are_one_line_in_every_program(kind, weights, files, tmp_path, capsys):
    path, why = weights[kind]
    good = tmp_path / "good"
    good.mkdir()
    odd.write_png(str(good / "a.png"), bgr())
    runs = {
        "inference_sr": ["-i", str(good), "-o", str(tmp_path / "o1"), "--model", path, "--quiet"],
        "derain": ["-i", str(good), "-w", path, "-o", str(tmp_path / "o2"), "--device", "cpu"],
        "sfd_iqa_eval": [str(good), "-c", path, "-o", str(tmp_path / "o3"), "--quiet"],
        "evaluate_sr": ["--sr", str(good), "--gt", str(good), "--sfd-iqa-checkpoint", path, "--out", str(tmp_path)],
        "export": ["--model", path, "-o", str(tmp_path / "o5")],
    }
    for script, argv in runs.items():
        assert load_script(script).main(argv) == EXIT_USAGE, script
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and path in err[0], (script, err)
        # the loaders that read network options from the file say why; others refuse the keys
        if script in ("inference_sr", "derain") or kind == "pickle":
            assert why in err[0], (script, err[0])


def test_a_huge_network_in_metadata_stays_small(weights, files, tmp_path):
    path, why = weights["huge network"]
    cmd = [sys.executable, "scripts/inference_sr.py", "-i", files["in"], "-o", str(tmp_path / "o"), "--model", path]
    run = run_measured(cmd, cwd=ROOT, kill_mb=MEMORY_MB + 500, timeout=300)
    assert run.code == EXIT_USAGE and why in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.peak_mb < MEMORY_MB


def test_demo_clip_weights_that_are_a_pickle_are_one_line(weights, monkeypatch, capsys):
    from sfd_tools.demo.run import choose_clip_weights
    from sfd_utils.cli import run_cli

    monkeypatch.setenv("SFD_CLIP_WEIGHTS", weights["pickle"][0])
    assert run_cli(lambda _argv: choose_clip_weights(ROOT)) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be read as CLIP weights (UnpicklingError" in err[0]


def test_output_paths_that_are_files_or_unwritable_are_one_line(files, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    good = tmp_path / "good"
    good.mkdir()
    odd.write_png(str(good / "a.png"), bgr())
    result = tmp_path / "r.json"
    result.write_text(json.dumps({"label": "a", "count": 1, "mean": {"psnr": 25.0, "lpips": 0.2}}))
    bicubic = ["--arch", "SFDBicubicUpsampler", "--arch-opt", "scale=2", "--quiet"]
    runs = [
        ("inference_sr", ["-i", str(good), "-o", str(a_file), *bicubic], "a file, not a folder"),
        ("inference_sr", ["-i", str(good), "-o", "/sys/sfd_out", *bicubic], "cannot create the folder"),
        ("evaluate_sr", ["--sr", str(good), "--gt", str(good), "--out", str(a_file)], "a file, not a folder"),
        ("sfd_iqa_eval", [str(good), "-c", files["net_d"], "-o", str(a_file)], "a file, not a folder"),
        ("derain", ["-i", str(good), "-w", files["net_g"], "-o", str(a_file)], "a file, not a folder"),
        ("plot_pd", [str(result), "--out", str(a_file / "pd")], "a file, not a folder"),
        ("iqa_ranking_check", ["--checkpoint", files["net_d"], "--out", str(a_file)], "a file, not a folder"),
        ("make_synthetic_rain", ["--root", str(a_file)], "a file, not a folder"),
        ("prepare_demo_data", ["--root", str(a_file)], "a file, not a folder"),
        ("derain", ["-i", str(good), "-w", files["net_g"], "--csv", str(a_file / "m.csv")], "a file, not a folder"),
    ]
    for script, argv, why in runs:
        assert load_script(script).main(argv) == EXIT_USAGE, script
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0], (script, err)


def test_names_never_write_outside_the_output_root(tmp_path, capsys):
    from basicsr.archs.rrdbnet_arch import RRDBNet

    good, out = tmp_path / "good", tmp_path / "deep" / "out"
    good.mkdir()
    odd.write_png(str(good / "a.png"), bgr())
    (out / "a_x").mkdir(parents=True)  # so that a path through `a_x/..` would resolve
    net_g = tmp_path / "net_g.pth"
    torch.save({"params": RRDBNet(3, 3, scale=4, num_feat=8, num_block=1, num_grow_ch=4).state_dict()}, net_g)
    bicubic = ["--arch", "SFDBicubicUpsampler", "--arch-opt", "scale=2", "--quiet"]
    runs = [
        ("evaluate_sr", ["--sr", str(good), "--gt", str(good), "--metrics", "psnr", "--out", str(out)], "--name"),
        ("export", ["--model", str(net_g), "-o", str(out), "--format", "safetensors"], "--name"),
        ("inference_sr", ["-i", str(good), "-o", str(out), *bicubic], "--suffix"),
    ]
    for script, argv, option in runs:
        for value in ("../../escaped", str(tmp_path / "escaped")):
            extra = [option, f"x/{value}" if option == "--suffix" else value]
            assert load_script(script).main([*argv, *extra]) == EXIT_USAGE, (script, value)
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and option in err[0] and "plain file name" in err[0], err
    assert sorted(os.listdir(tmp_path)) == ["deep", "good", "net_g.pth"]


def test_score_table_names_may_not_leave_the_image_folder(files, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    odd.write_png(str(folder / "good.png"), bgr())
    odd.write_png(str(tmp_path / "secret.png"), bgr())
    for name in ("../secret.png", str(tmp_path / "secret.png"), "sub/../../secret.png"):
        (folder / "mos.csv").write_text(f"image_name,MOS\ngood.png,3.0\n{name},2.0\n")
        argv = [str(folder / "mos.csv"), "-c", files["net_d"], "-o", str(tmp_path / "o"), "--quiet"]
        assert load_script("sfd_iqa_eval").main(argv) == EXIT_USAGE
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "line 3: image name" in err[0] and "leaves the image folder" in err[0], err
    assert not (tmp_path / "o").exists()


def test_result_files_that_are_devices_deep_or_huge_are_one_line(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    sparse = odd.sparse_file(tmp_path / "sparse.json")
    for path, why in (("/dev/zero", "not a regular file"), (str(deep), "nested 100000 levels"), (sparse, "over the")):
        assert load_script("plot_pd").main([path, "--out", str(tmp_path / "pd")]) == EXIT_USAGE
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0], err
