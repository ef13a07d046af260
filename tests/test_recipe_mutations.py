"""Recipe mutation battery: seeded random mutations of tiny variants of every shipped training recipe
(keys dropped, values swapped for another kind, ``type:`` names and keys misspelt, python and unknown
tags inserted, the text damaged) each end in a one-line error or a successful start — never a
traceback, never code execution.

A start is the launcher's own ``--check`` path in-process (sfd_utils.launcher.train_pipeline: recipe and
command-line checks, basicsr's option parsing, file checks, the data sets, the model built); a few
mutants also run end to end through ``basicsr/train.py`` in a subprocess.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import cv2
import pytest
import yaml
from conftest import CLIP_CONFIGS, ROOT, photo
from recipe_mutations import RECIPES, mutants, plain, tiny_variant

from sfd_utils.photos import bicubic_down, tiles

N_MUTANTS = 240
SEED = 20261204


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    """Tiny paired SR data (HR 64² crops, LR ×4 and ×2, a meta_info file) and tiny unpaired rain data."""
    from sfd_tools.csud.synthetic_rain import make_synthetic_rain

    root = tmp_path_factory.mktemp("mutation_data")
    for sub in ("hr", "lr", "lr_x2"):
        (root / sub).mkdir()
    names = []
    for name in ("astronaut", "coffee"):
        for i, crop in enumerate(tiles(photo(name), 64, 128)[:2]):
            file = f"{name}_{i}.png"
            bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(root / "hr" / file), bgr)
            cv2.imwrite(str(root / "lr" / file), cv2.cvtColor(bicubic_down(crop, 4), cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / "lr_x2" / file), cv2.resize(bgr, (32, 32), interpolation=cv2.INTER_CUBIC))
            names.append(file)
    (root / "meta_info.txt").write_text("".join(f"hr/{n}\n" for n in names))
    rain = tmp_path_factory.mktemp("mutation_rain")
    make_synthetic_rain(str(rain), train_size=32, test_size=32, max_per_photo=1, max_test_per_photo=1)
    return {"pairs": str(root), "rain": str(rain)}


@pytest.fixture(scope="module")
def tiny(data, tiny_clip_files) -> dict[str, dict]:
    clip = tiny_clip_files["tiny-rn"]
    return {r: tiny_variant(r, data["pairs"], data["rain"], clip, CLIP_CONFIGS) for r in RECIPES}


def start(root: str, recipe: str, monkeypatch, capsys) -> tuple[str, str]:
    """The launcher's ``--check`` start in-process: ('started' | 'refused', stderr)."""
    from sfd_utils.launcher import train_pipeline

    monkeypatch.setattr(sys, "argv", ["train.py", "-opt", recipe, "--check"])
    capsys.readouterr()
    try:
        train_pipeline(root)
    except SystemExit as err:
        outcome = f"refused:{err.code}"
    else:
        outcome = "started"
    return outcome, capsys.readouterr().err


def test_every_tiny_variant_starts(tmp_path, tiny, monkeypatch, capsys):
    """The unmutated tiny variants start: the battery's refusals come from the mutations."""
    logging.getLogger("basicsr").setLevel(logging.WARNING)
    for recipe, opt in tiny.items():
        path = tmp_path / recipe
        path.write_text(yaml.safe_dump(plain(opt), sort_keys=False))
        outcome, err = start(str(tmp_path), str(path), monkeypatch, capsys)
        assert outcome == "started", f"{recipe}: {err}"


def test_mutation_battery(tmp_path, tiny, monkeypatch, capsys):
    logging.getLogger("basicsr").setLevel(logging.WARNING)
    sentinels, counts, problems = [], {}, []
    for index, recipe, what, text, sentinel in mutants(tiny, N_MUTANTS, SEED, str(tmp_path)):
        path = tmp_path / f"mutant_{index}.yml"
        path.write_text(text)
        sentinels.append(sentinel)
        try:
            outcome, err = start(str(tmp_path), str(path), monkeypatch, capsys)
        except Exception as exc:  # a traceback in the real launcher
            problems.append(f"#{index} {recipe} ({what}): {type(exc).__name__}: {exc}")
            continue
        lines = [line for line in err.splitlines() if line.strip()]
        if outcome == "refused:2":
            if "Traceback" in err or not lines or not lines[-1].startswith("sfd-basicsr: "):
                problems.append(f"#{index} {recipe} ({what}): not one line: {err[-800:]}")
        elif outcome != "started":
            problems.append(f"#{index} {recipe} ({what}): {outcome}: {err[-800:]}")
        counts[outcome] = counts.get(outcome, 0) + 1
        if "tag " in what and "!!python/" in what and outcome == "started":
            problems.append(f"#{index} {recipe} ({what}): a python tag was not refused")
    assert not problems, "\n".join(problems)
    ran = [s for s in sentinels if os.path.exists(s)]
    assert not ran, f"code ran: {ran}"
    assert sum(counts.values()) == N_MUTANTS
    # neither side vacuous: many mutants are refused, and mutations the code tolerates still start
    assert counts.get("refused:2", 0) >= N_MUTANTS // 2 and counts.get("started", 0) >= 10, counts


def test_the_payloads_are_live(tmp_path):
    """Control: the battery's executing tags do run code under the loader basicsr's ``ordered_yaml()``
    returns (PyYAML's full ``Loader``), so a missing sentinel above means the payload was refused, not
    that it was inert."""
    from recipe_mutations import TAGS

    loader = getattr(yaml, "CLoader", yaml.Loader)
    for i, tag in enumerate(TAGS[:4]):
        sentinel = tmp_path / f"control_{i}"
        try:
            yaml.load(f"x: {tag.format(sentinel=sentinel)}\n", Loader=loader)  # noqa: S506 (the point of the test)
        except Exception:  # noqa: S110  (os.system's return value may not construct; the file tells)
            pass
        assert sentinel.exists(), tag


def test_mutants_end_to_end_through_the_launcher(tmp_path, tiny):
    """A few mutants through ``python basicsr/train.py -opt <mutant> --check`` in a subprocess: exit
    status 2 and one line, or a start (0); no traceback, no sentinel."""
    chosen = list(mutants(tiny, 4, SEED + 1, str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for number, recipe, what, text, sentinel in chosen:
        path = tmp_path / f"e2e_{number}.yml"
        path.write_text(text)
        cmd = [sys.executable, os.path.join(ROOT, "basicsr", "train.py"), "-opt", str(path), "--check"]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert "Traceback" not in proc.stderr, f"{recipe} ({what}):\n{proc.stderr[-3000:]}"
        assert proc.returncode in (0, 2), f"{recipe} ({what}): {proc.returncode}\n{proc.stderr[-3000:]}"
        if proc.returncode == 2:
            assert proc.stderr.strip().splitlines()[-1].startswith("sfd-basicsr: "), proc.stderr
        assert not os.path.exists(sentinel)
