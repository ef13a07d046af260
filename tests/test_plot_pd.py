"""Perception-distortion plot: points from evaluation JSONs, PNG + SVG written and readable."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import matplotlib.image as mpimg
import numpy as np
import pytest
from test_sr_inference import load_script

from sfd_tools.sr.evaluation import write_results
from sfd_tools.sr.plot_pd import better_corner, load_points, plot_pd


def result(label: str, psnr: float, lpips: float | None, niqe: float) -> dict:
    """A result dict as evaluate_folders returns it (two images; LPIPS may be missing)."""
    metrics = ["psnr", "ssim", "niqe"] + (["lpips"] if lpips is not None else [])
    mean = {"psnr": psnr, "ssim": 0.8, "niqe": niqe, **({"lpips": lpips} if lpips is not None else {})}
    rows = [{"name": n, "sr": f"{n}.png", "gt": f"{n}.png", **mean} for n in ("a", "b")]
    return {
        "label": label,
        "count": 2,
        "metrics": metrics,
        "better": {},
        "mean": mean,
        "per_image": rows,
        "problems": {"sr_without_gt": []},
    }


@pytest.fixture
def jsons(tmp_path):
    out = []
    for label, psnr, lpips, niqe in (
        ("Bicubic", 26.1, 0.41, 7.2),
        ("ESRGAN", 24.3, 0.12, 3.1),
        ("SFD", 24.9, 0.10, 2.9),
    ):
        out.append(write_results(result(label, psnr, lpips, niqe), str(tmp_path), label)["json"])
    return out


def test_plot_files_are_written_and_readable(jsons, tmp_path):
    points = load_points(jsons, None, "psnr", "lpips")
    assert [p["label"] for p in points] == ["Bicubic", "ESRGAN", "SFD"] and points[2]["y"] == 0.10
    png, svg = plot_pd(points, "lpips", "psnr", str(tmp_path / "plots" / "pd.png"))
    assert png.endswith("pd.png") and svg.endswith("pd.svg")
    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 400
    assert np.std(img[..., :3]) > 0.05  # something is drawn
    texts = {t.text for t in ET.parse(svg).iter() if t.tag.endswith("text")}
    assert {"Bicubic", "ESRGAN", "SFD", "better"} <= texts


def test_better_corner_and_labels(jsons, tmp_path):
    assert better_corner("psnr", "lpips") == (True, False)  # bottom right
    assert better_corner("psnr", "niqe") == (True, False)
    assert better_corner("psnr", "sfd_iqa") == (True, True)  # top right
    points = load_points(jsons, ["a", "b", "c"], "psnr", "niqe")
    assert [p["label"] for p in points] == ["a", "b", "c"] and points[0]["y"] == 7.2
    with pytest.raises(ValueError, match="one --label per file"):
        load_points(jsons, ["a"], "psnr", "niqe")


def test_missing_metric_names_the_file(tmp_path, jsons):
    no_lpips = write_results(result("Old", 25.0, None, 5.0), str(tmp_path), "old")["json"]
    with pytest.raises(ValueError, match=r"old\.json: no mean 'lpips'"):
        load_points([*jsons, no_lpips], None, "psnr", "lpips")
    with open(no_lpips) as f:
        assert json.load(f)["mean"]["niqe"] == 5.0
    for name, content in (("table.csv", "name,psnr\na,1\n"), ("list.json", "[1, 2]")):
        (tmp_path / name).write_text(content)
        with pytest.raises(ValueError, match=f"{name}: not an evaluation JSON"):
            load_points([str(tmp_path / name)], None, "psnr", "niqe")


def test_cli(jsons, tmp_path, capsys):
    cli = load_script("plot_pd")
    assert cli.main([*jsons, "--y", "niqe", "--out", str(tmp_path / "pd_niqe")]) == 0
    out = capsys.readouterr().out
    assert "SFD" in out and "pd_niqe.png" in out and "pd_niqe.svg" in out
    assert mpimg.imread(str(tmp_path / "pd_niqe.png")).shape[2] in (3, 4)
    assert "different numbers of images" not in out
    fewer = result("Few", 24.0, 0.3, 6.0)
    fewer["count"] = 1
    few = write_results(fewer, str(tmp_path), "few")["json"]
    assert cli.main([*jsons, few, "--y", "niqe", "--out", str(tmp_path / "pd_mixed")]) == 0
    assert "different numbers of images" in capsys.readouterr().out
