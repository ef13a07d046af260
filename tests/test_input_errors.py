"""Clear input errors: an empty input folder is one ``error:`` line naming it and exit status 2 in every
script that reads a folder; tiny images enlarged for SFD-IQA are warned about once per file; the
offline CLIP message names the folders it searched."""

from __future__ import annotations

import importlib.util
import os
import warnings

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, photo

from sfd_arch.clip_backbone import CLIPWeightsNotFound, hf_cache_folder, resolve_clip_weights
from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
from sfd_metric.sfd_iqa import SFDIQA, SmallImageWarning
from sfd_tools.sr.evaluation import Pairing, evaluate_pairs


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_error_line(capsys, folder) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and str(folder) in err, err
    return err


@pytest.fixture
def folders(tmp_path):
    """An empty folder, one holding only a text file, and one holding a photo."""
    empty, text, full = tmp_path / "empty", tmp_path / "text", tmp_path / "full"
    for f in (empty, text, full):
        f.mkdir()
    (text / "notes.txt").write_text("not an image")
    cv2.imwrite(str(full / "a.png"), photo("chelsea")[:32, :32, ::-1])
    return empty, text, full


def test_inference_sr_empty_folder_exits_2(folders, tmp_path, capsys):
    cli = load_script("inference_sr")
    for folder in folders[:2]:
        args = ["-i", str(folder), "-o", str(tmp_path / "out"), "--arch", "SFDBicubicUpsampler", "--quiet"]
        assert cli.main(args) == 2
        assert "holds no images" in one_error_line(capsys, folder)


def test_derain_empty_input_or_gt_folder_exits_2(folders, tmp_path, capsys):
    from sfd_tools.csud.derain import main
    from sfd_utils.cli import run_cli

    empty, text, full = folders
    weights = str(tmp_path / "net_g.pth")  # never read: the inputs are checked first
    assert run_cli(main, ["-i", str(empty), "-w", weights]) == 2
    assert "--input" in one_error_line(capsys, empty)
    assert run_cli(main, ["-i", str(text), "-w", weights]) == 2
    one_error_line(capsys, text)
    from sfd_tools.csud.derain import derain_paths

    with pytest.raises(ValueError, match="--gt: folder .* holds no images"):
        derain_paths(torch.nn.Identity(), [str(full / "a.png")], gt_dir=str(empty))


def test_evaluate_sr_empty_sr_or_gt_folder_exits_2(folders, tmp_path, capsys):
    cli = load_script("evaluate_sr")
    empty, _, full = folders
    base = ["--metrics", "psnr", "--quiet", "--out", str(tmp_path / "eval")]
    assert cli.main(["--sr", str(empty), "--gt", str(full), *base]) == 2
    assert "--sr folder" in one_error_line(capsys, empty)
    assert cli.main(["--sr", str(full), "--gt", str(empty), *base]) == 2
    assert "--gt folder" in one_error_line(capsys, empty)


def test_sfd_iqa_eval_empty_folder_exits_2(folders, tmp_path, capsys):
    from sfd_tools.iqa.evaluate import main

    empty = folders[0]
    assert main([str(empty), "-c", str(tmp_path / "net_d.pth"), "--quiet"]) == 2
    one_error_line(capsys, empty)


def test_tiny_image_warned_once_per_file(tiny_clip_files, tmp_path):
    from sfd_tools.iqa.evaluate import run_eval

    torch.manual_seed(0)
    disc = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=8)
    scorer = SFDIQA(disc, tile=64, device="cpu", batch_size=1)
    with pytest.warns(SmallImageWarning, match=r"one\.png is 1x1, smaller than the 64-pixel tile.* to 64x64"):
        scorer.score(photo("chelsea")[:1, :1], name="one.png")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, (h, w) in {"a.png": (40, 30), "b.png": (20, 200), "big.png": (64, 150)}.items():
        cv2.imwrite(str(folder / name), photo("chelsea")[:h, :w, ::-1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # count every call: one warning per file, not per crop or batch
        run_eval(str(folder), out_dir=str(tmp_path / "out"), scorer=scorer, progress=False)
    messages = sorted(str(w.message) for w in caught if issubclass(w.category, SmallImageWarning))
    assert len(messages) == 2
    assert str(folder / "a.png") + " is 30x40" in messages[0] and "enlargement to 64x85" in messages[0]
    assert str(folder / "b.png") + " is 200x20" in messages[1] and "to 640x64" in messages[1]


def test_evaluate_pairs_names_the_file_of_a_warning(tmp_path, capsys):
    sr = tmp_path / "x_out.png"
    cv2.imwrite(str(sr), photo("chelsea")[:16, :16, ::-1])

    def warns(a: np.ndarray, b: np.ndarray) -> dict:
        warnings.warn("enlarged", UserWarning, stacklevel=1)
        warnings.warn("enlarged", UserWarning, stacklevel=1)
        return {"m": 1.0}

    evaluate_pairs(Pairing(pairs=[("x", str(sr), str(sr))]), [(("m",), warns)], progress=False)
    err = capsys.readouterr().err
    assert err.count("enlarged") == 1 and f"warning: {sr}: enlarged" in err


def test_offline_clip_message_names_the_folders(tmp_path):
    with pytest.raises(CLIPWeightsNotFound) as info:
        resolve_clip_weights("RN50", "openai", cache_dir=str(tmp_path))
    msg = str(info.value)
    assert f"Hugging Face cache {tmp_path} for" in msg and os.path.join(str(tmp_path), "RN50.pt") in msg
    assert "default HF_HOME" not in msg
    with pytest.raises(CLIPWeightsNotFound) as info:
        resolve_clip_weights("RN50", "openai")
    assert f"Hugging Face cache {hf_cache_folder()} for" in str(info.value)
    assert os.path.expanduser("~/.cache/clip") in str(info.value)
