"""Recipes are data: the order-preserving safe loader (standard tags kept, python and unknown tags
refused in one line naming file, line and tag), ``--force_yml`` without eval/exec, and the issue's
evil recipe through every entry point (launcher, sfd-train, a fork's own basicsr/train.py and test.py
with the opt-in switch, the scripts' --opt and --arch-opt, traiNNer-redux): nothing runs, one line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import OrderedDict

import pytest
import torch
import yaml
from conftest import ROOT

from sfd_utils.recipe import RecipeError, dump_recipe, load_recipe, parse_recipe
from sfd_utils.train_command import apply_force_yml, parse_force_value, split_force_entry

EVIL = 'name: x\nx: !!python/object/apply:os.system ["touch {sentinel}"]\n'
RECIPES = sorted(f for f in os.listdir(os.path.join(ROOT, "options")) if f.endswith(".yml"))


def evil(tmp_path) -> tuple[str, str]:
    sentinel = str(tmp_path / "pwned")
    path = tmp_path / "evil.yml"
    path.write_text(EVIL.format(sentinel=sentinel))
    return str(path), sentinel


def assert_refused(stderr: str, path: str, sentinel: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert not os.path.exists(sentinel), "the recipe ran code"
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(lines) == 1, stderr[-3000:]
    assert f"{path}:2: refused tag !!python/object/apply:os.system" in lines[0], lines[0]


# -- the loader ----------------------------------------------------------------------------------------
def test_standard_tags_and_order_are_kept():
    text = "b: !!float 1e-4\na: 1e-4\nc: !!int '3'\nd: !!str 5\ne: !!bool yes\nf: ~\ng: [1, 2.5]\nh: {y: 1, x: 2}\n"
    opt = parse_recipe(text, "t.yml")
    assert isinstance(opt, OrderedDict) and isinstance(opt["h"], OrderedDict)
    assert list(opt) == list("bacdefgh") and list(opt["h"]) == ["y", "x"]
    assert opt["b"] == 1e-4 and opt["a"] == "1e-4" and opt["c"] == 3 and opt["d"] == "5"
    assert opt["e"] is True and opt["f"] is None and opt["g"] == [1, 2.5]
    merged = parse_recipe("base: &b {lr: 1, gamma: 2}\nmine:\n  <<: *b\n  lr: 3\n", "t.yml")
    assert merged["mine"] == {"lr": 3, "gamma": 2}  # merge keys resolved (BasicSR's loader keeps `<<`)


@pytest.mark.parametrize("recipe", RECIPES)
def test_shipped_recipes_load_as_before_and_round_trip(recipe, tmp_path):
    path = os.path.join(ROOT, "options", recipe)
    ours = load_recipe(path)
    plain = yaml.safe_load(open(path, encoding="utf-8"))
    assert ours == plain and list(ours) == list(plain)
    again = tmp_path / recipe
    again.write_text(dump_recipe(ours))
    assert load_recipe(str(again)) == ours and list(load_recipe(str(again))) == list(ours)


@pytest.mark.parametrize(
    "value, line, shown",
    [
        ('x: !!python/object/apply:os.system ["touch S"]', 2, "!!python/object/apply:os.system"),
        ('x: !!python/object/new:os.system ["touch S"]', 2, "!!python/object/new:os.system"),
        ("x: !!python/name:os.system", 2, "!!python/name:os.system"),
        ("x: !!python/module:os", 2, "!!python/module:os"),
        ("x: !!python/tuple [1, 2]", 2, "!!python/tuple"),
        ("x: !include other.yml", 2, "!include"),
        ("x:\n  y:\n    - 1\n    - !!python/object/apply:os.system [S]", 5, "!!python/object/apply:os.system"),
        ("? !!python/object/apply:os.system [S]\n: 1", 2, "!!python/object/apply:os.system"),
    ],
)
def test_tags_that_are_not_data_are_refused_in_one_line(value, line, shown, tmp_path):
    sentinel = tmp_path / "S"
    path = tmp_path / "r.yml"
    path.write_text("name: r\n" + value.replace("S", str(sentinel)) + "\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: refused tag {shown} ") and "\n" not in message
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a: [1\n", "r.yml:2:1: not valid YAML: did not find expected ',' or ']'"),
        ("a: 1\n b: 2\n", "r.yml:2:3: not valid YAML: mapping values are not allowed"),
        ("- 1\n- 2\n", "r.yml: a recipe is a mapping of options (key: value lines), not a list"),
        ("just text\n", "r.yml: a recipe is a mapping of options (key: value lines), not a str"),
        ("? [a, b]\n: 1\n", "r.yml:1: a key under the top level is ['a', 'b'], not text"),
    ],
)
def test_malformed_yaml_is_one_line(text, expected, tmp_path):
    path = tmp_path / "r.yml"
    path.write_text(text)
    with pytest.raises(RecipeError) as err:
        load_recipe(str(path))
    assert str(err.value).startswith(str(tmp_path / expected)) and "\n" not in str(err.value)


def test_unreadable_files_are_one_line(tmp_path):
    with pytest.raises(RecipeError, match="options file .*nope.yml' does not exist"):
        load_recipe(str(tmp_path / "nope.yml"))
    (tmp_path / "latin1.yml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(RecipeError, match="latin1.yml: not UTF-8 text"):
        load_recipe(str(tmp_path / "latin1.yml"))
    assert load_recipe(str(_write(tmp_path / "empty.yml", ""))) == {}


def _write(path, text):
    path.write_text(text)
    return path


# -- --force_yml --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value",
    [
        ("~", None),
        ("none", None),  # as BasicSR reads it
        ("True", True),
        ("false", False),
        ("!!float 1e-4", 1e-4),
        ("12", 12),
        ("1.5", 1.5),
        ("1e-3", "1e-3"),  # as in a recipe file (YAML 1.1): text; the option check then names it
        ("-1", -1),
        ("[1, 2]", [1, 2]),
        ("['a', 'b']", ["a", "b"]),
        ("abc", "abc"),
        ("{type: Adam, lr: 0.1}", OrderedDict(type="Adam", lr=0.1)),
    ],
)
def test_force_yml_values_are_read_as_recipe_data(text, value):
    assert parse_force_value(text) == value and type(parse_force_value(text)) is type(value)


def test_force_yml_cannot_run_code(tmp_path):
    sentinel = tmp_path / "pwned"
    # a python-looking list is text in a YAML list, never evaluated
    assert parse_force_value(f'[__import__("os").system("touch {sentinel}")]') == [
        f'__import__("os").system("touch {sentinel}")'
    ]
    with pytest.raises(RecipeError, match="refused tag !!python/object/apply:os.system"):
        parse_force_value(f'!!python/object/apply:os.system ["touch {sentinel}"]')
    # basicsr execs opt["<key>"]=value: this key would run `touch`
    with pytest.raises(RecipeError, match="is not a recipe key"):
        split_force_entry(f'name"];__import__("os").system("touch {sentinel}");opt["x=1')
    with pytest.raises(RecipeError, match="is not a recipe key"):
        split_force_entry('a\\"]:b=1')
    with pytest.raises(RecipeError, match="control characters"):
        split_force_entry("name=x\nfoo: 1")
    assert not sentinel.exists()
    assert split_force_entry("train.optim_g.lr=1e-4") == (["train", "optim_g", "lr"], "1e-4")
    assert split_force_entry("train:optim_g:lr=1e-4") == (["train", "optim_g", "lr"], "1e-4")
    assert split_force_entry("name=a=b") == (["name"], "a=b")
    opt = OrderedDict(train=OrderedDict(total_iter=10))
    assert apply_force_yml(opt, ["train:total_iter=3", "train.new=[1]"])["train"] == {"total_iter": 3, "new": [1]}
    assert opt["train"]["total_iter"] == 10  # a copy
    with pytest.raises(RecipeError, match="trian is not in the recipe; did you mean train"):
        apply_force_yml(opt, ["trian:total_iter=3"])


# -- the evil recipe through every entry point ----------------------------------------------------------
def run(cmd: list[str], cwd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


def test_launcher_and_sfd_train_refuse_the_evil_recipe(tmp_path):
    path, sentinel = evil(tmp_path)
    proc = run([sys.executable, os.path.join(ROOT, "basicsr", "train.py"), "-opt", path], str(tmp_path))
    assert proc.returncode == 2
    assert_refused(proc.stderr, path, sentinel)
    console = os.path.join(os.path.dirname(sys.executable), "sfd-train")
    if os.path.exists(console):  # the console script of an installed plugin
        proc = run([console, "-opt", path, "--auto_resume"], str(tmp_path))
        assert proc.returncode == 2
        assert_refused(proc.stderr, path, sentinel)
    injected = f'name"];__import__("os").system("touch {sentinel}");opt["x=1'
    recipe = os.path.join(ROOT, "options", "demo_SFD_cpu.yml")
    proc = run(
        [sys.executable, os.path.join(ROOT, "basicsr", "train.py"), "-opt", recipe, "--force_yml", injected], ROOT
    )
    assert proc.returncode == 2 and "is not a recipe key" in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(sentinel)


@pytest.mark.parametrize("entry", ["basicsr.train", "basicsr.test"])
def test_a_forks_own_entry_refuses_it_with_the_switch(tmp_path, entry):
    """``SFD_BASICSR_SAFE_YAML=1``: basicsr's own parse_options (as a fork's unmodified basicsr/train.py
    and test.py call it) reads the recipe with the safe loader."""
    path, sentinel = evil(tmp_path)
    proc = run([sys.executable, "-m", entry, "-opt", path], str(tmp_path), {"SFD_BASICSR_SAFE_YAML": "1"})
    assert proc.returncode == 2
    assert_refused("\n".join(ln for ln in proc.stderr.splitlines() if "RuntimeWarning" not in ln), path, sentinel)


def test_without_the_switch_the_hook_leaves_basicsr_as_it_is(tmp_path):
    code = "import basicsr.utils.options as o; print(o.ordered_yaml.__module__, o.parse_options.__module__)"
    env = {k: v for k, v in os.environ.items() if k != "SFD_BASICSR_SAFE_YAML"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.stdout.split()[-2:] == ["basicsr.utils.options", "basicsr.utils.options"], proc.stderr


def load_script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scripts_refuse_the_evil_recipe(tmp_path, capsys):
    import cv2
    import numpy as np

    path, sentinel = evil(tmp_path)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), np.full((16, 16, 3), 128, np.uint8))
    from basicsr.archs.rrdbnet_arch import RRDBNet

    checkpoint = tmp_path / "net.pth"
    torch.save({"params": RRDBNet(3, 3, num_feat=4, num_block=1, num_grow_ch=4).state_dict()}, checkpoint)
    calls = {
        "inference_sr": ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--opt", path, "--quiet"],
        "export": ["--model", str(checkpoint), "--opt", path, "-o", str(tmp_path / "exp")],
        "derain": ["-i", str(tmp_path / "in"), "-w", str(checkpoint), "--opt", path],
    }
    for script, argv in calls.items():
        capsys.readouterr()
        assert load_script(script).main(argv) == 2, script
        err = capsys.readouterr().err
        assert_refused(err.replace("error: ", ""), path, sentinel)
    tag = f'scale=!!python/object/apply:os.system ["touch {sentinel}"]'
    argv = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--arch", "SFDBicubicUpsampler", "--arch-opt", tag]
    assert load_script("inference_sr").main(argv) == 2
    err = capsys.readouterr().err
    assert "--arch-opt scale:1: refused tag !!python/object/apply:os.system" in err and err.count("\n") == 1
    assert not os.path.exists(sentinel)


def test_trainner_never_runs_it_and_the_switch_makes_it_one_line(trainner_root, tmp_path):
    """traiNNer-redux decodes recipes with PyYAML's safe loader (msgspec): the tag never runs; with the
    switch, its yaml_load refuses it in one line instead of a decode error."""
    path, sentinel = evil(tmp_path)
    code = textwrap.dedent(
        f"""
        import sys
        import traiNNer
        from traiNNer.utils.options import yaml_load
        try:
            yaml_load({path!r})
        except Exception as err:
            print("refused:", type(err).__name__)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "SFD_BASICSR_SAFE_YAML"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "refused: DecodeError" in proc.stdout, proc.stderr[-3000:]
    assert not os.path.exists(sentinel)
    proc = run([sys.executable, "-c", code], str(tmp_path), {"SFD_BASICSR_SAFE_YAML": "1"})
    assert proc.returncode == 2
    assert_refused(proc.stderr, path, sentinel)
