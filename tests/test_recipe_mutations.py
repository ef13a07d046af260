"""Recipe battery (issue 28): a generated battery of malformed recipes and command lines, each run as its
own process through the real entry points (``python basicsr/train.py`` and ``sfd-train``), once with
``--check`` and once for real (2 iterations on tiny data, tiny networks and a tiny CLIP).

The battery: every shipped training recipe unchanged (the controls: they must start, and train for
real); for three base recipes (SFD, plain SR, CSUD) the targeted cases of tests/recipe_cases.py
(numbers out of range, odd YAML, unfit files, unsafe names, machine limits); special ``-opt`` inputs;
command-line abuse (every ``--force_yml`` spelling with a key that breaks out of BasicSR's ``exec``);
and seeded random mutations of every shipped recipe (tests/recipe_mutations.py). Per case: no traceback,
no code executed (a payload would create its sentinel file), no hang (a time limit), exit status 0 or 2
(2 with one ``sfd-basicsr:`` line, matching the expected key where the case names one), peak memory of
the process and its children under 3 GB. Nothing is written outside the output root; ``--check`` writes
nothing at all.

The cases run in children forked from one warm process (tests/recipe_battery.py), two at a time.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import CLIP_CONFIGS, ROOT
from recipe_cases import Variant, command_lines, targeted
from recipe_mutations import RECIPES, make_data, mutants, plain, tiny_variant

N_RANDOM = 120
SEED = 20261204
BASE = ["demo_SFD_cpu.yml", "demo_SR_psnr_cpu.yml", "demo_CSUD_cpu.yml"]
MAX_RSS_MB = 3000
JOBS = 2


class _Touch:
    """A pickle that runs ``touch`` when unpickled with a full pickle loader."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


@pytest.fixture(scope="module")
def battery(tmp_path_factory, tiny_clip_files) -> dict:
    """The tiny data, the fixture files, the output roots and every variant of the battery."""
    base = tmp_path_factory.mktemp("battery")
    data = make_data(str(base / "data"))
    tiny = {r: tiny_variant(r, data["pairs"], data["rain"], tiny_clip_files["tiny-rn"], CLIP_CONFIGS) for r in RECIPES}
    sentinels = base / "sentinels"
    sentinels.mkdir()
    fx = {"missing": str(base / "nope.pth"), "folder": str(base / "a_folder"), "victim": str(base / "victim")}
    for folder in ("folder", "victim"):
        os.makedirs(fx[folder])
    (base / "victim" / "keep.txt").write_text("a user's folder\n")
    fx["empty"] = str(base / "empty.pth")
    open(fx["empty"], "w").close()
    fx["text"] = str(base / "text.txt")
    (base / "text.txt").write_text("not weights\n")
    fx["evil_pth"] = str(base / "evil.pth")
    with open(fx["evil_pth"], "wb") as f:
        pickle.dump(_Touch(str(sentinels / "pwned_pickle")), f)
    fx["fifo"] = str(base / "fifo")
    os.mkfifo(fx["fifo"])
    fx["loop"] = str(base / "loop")
    os.symlink(fx["loop"], fx["loop"])
    fx["sparse"] = str(base / "sparse_meta.txt")
    with open(fx["sparse"], "wb") as f:
        f.truncate(70 << 20)
    fx["big_list"] = str(base / "big_list.yml")
    with open(fx["big_list"], "w") as f:
        f.write("x: [" + "1, " * (17 << 20) + "1]\n")  # 51 MB, 17.8 M integers
    fx["big_recipe"] = str(base / "big_recipe.yml")
    text = yaml.safe_dump(plain(tiny[BASE[0]]), sort_keys=False)
    (base / "big_recipe.yml").write_text(text + "# padding\n" * ((2 << 20) // 10))  # 2 MiB
    variants = [Variant(f"control-{r[:-4]}", "control", r, "unchanged", yaml.safe_dump(plain(o), sort_keys=False),
                        expect=(0, ""), sentinel="") for r, o in tiny.items()]  # fmt: skip
    variants += list(targeted(tiny, BASE, fx, str(sentinels)))
    variants += list(command_lines(tiny, BASE[1:], str(sentinels)))
    for index, recipe, what, text, sentinel in mutants(tiny, N_RANDOM, SEED, str(sentinels)):
        variants.append(Variant(f"random-{index}", "random", recipe, what, text, sentinel=sentinel))
    recipes = base / "recipes"
    recipes.mkdir()
    for v in variants:
        if v.text is not None:
            v.opt_path = str(recipes / f"{v.id}.yml")
            with open(v.opt_path, "w", encoding="utf-8", newline="") as f:
                f.write(v.text)
    return {"base": base, "variants": variants, "fx": fx, "sentinels": sentinels, "tiny": tiny}


def launcher_root(folder, script: str) -> str:
    """A folder laid out like this repo (basicsr/train.py, no __init__.py) with an existing run folder."""
    os.makedirs(os.path.join(folder, "basicsr"))
    shutil.copy(script, os.path.join(folder, "basicsr", "train.py"))
    os.makedirs(os.path.join(folder, "experiments", "existing_run"))
    with open(os.path.join(folder, "experiments", "existing_run", "marker.txt"), "w") as f:
        f.write("an earlier run\n")
    return str(folder)


def run_battery(battery: dict, mode: str, cases: list[dict], timeout: float, env: dict | None = None) -> dict:
    """Run ``cases`` through tests/recipe_battery.py; returns its JSON (summary, results)."""
    base = battery["base"]
    with open(base / f"{mode}_cases.json", "w") as f:
        json.dump(cases, f)
    full_env = {k: v for k, v in os.environ.items() if k != "SFD_BASICSR_SAFE_YAML"}
    full_env.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})})
    cmd = [sys.executable, os.path.join(ROOT, "tests", "recipe_battery.py"), str(base / f"{mode}_cases.json")]
    cmd += [str(base / f"{mode}_results.json"), "--jobs", str(JOBS), "--timeout", str(timeout)]
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(base / f"{mode}_results.json") as f:
        return json.load(f)


def cases_for(variants: list[Variant], root: str, check: bool) -> list[dict]:
    """Runner cases: entry points alternate between ``python basicsr/train.py`` and ``sfd-train``. With
    ``--check`` all share ``root`` (nothing is written); real runs each get their own root under it (runs
    of one name at the same second would archive each other's folder)."""
    out = []
    for i, v in enumerate(variants):
        argv = ["-opt", v.opt_path, *v.argv, *(["--check"] if check else [])]
        entry = v.entry or ("script", "console")[i % 2]
        case_root = (
            root if check else launcher_root(os.path.join(root, v.id), os.path.join(root, "basicsr", "train.py"))
        )
        out.append({"id": v.id, "entry": entry, "argv": argv, "cwd": case_root, "root": case_root})
    return out


def problems_of(variants: list[Variant], results: list[dict], check: bool) -> list[str]:
    """Every assertion of the module doc, as a list of named failures (empty when all hold)."""
    problems = []
    for v, r in zip(variants, results, strict=True):
        label = f"{v.id} [{v.what}]"
        lines = [line for line in r["tail"].splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        if r["timed_out"]:
            problems.append(f"{label}: no exit within the time limit")
        elif r["traceback"]:
            problems.append(f"{label}: traceback:\n{r['tail'][-1500:]}")
        elif r["code"] not in (0, 2):
            problems.append(f"{label}: exit status {r['code']}: {r['tail'][-800:]}")
        elif r["code"] == 2 and (not last.startswith("sfd-basicsr: ") or last.startswith("sfd-basicsr: warning")):
            problems.append(f"{label}: exit 2 without a one-line reason: {r['tail'][-800:]}")
        elif v.expect is not None and v.expect[0] != r["code"] and (check or v.expect[0] == 2):
            problems.append(f"{label}: exit {r['code']}, expected {v.expect[0]}: {last}")
        elif v.expect is not None and r["code"] == 2 and v.expect[1] and v.expect[1] not in last:
            problems.append(f"{label}: expected {v.expect[1]!r} in: {last}")
        if r["maxrss_mb"] > MAX_RSS_MB:
            problems.append(f"{label}: peak memory {r['maxrss_mb']} MB")
        if v.sentinel and os.path.exists(v.sentinel):
            problems.append(f"{label}: code ran (sentinel {v.sentinel})")
    return problems


def report(mode: str, variants: list[Variant], out: dict) -> str:
    results = out["results"]
    codes = {c: sum(r["code"] == c for r in results) for c in sorted({r["code"] for r in results})}
    slow = max(results, key=lambda r: r["seconds"])
    peak = max(results, key=lambda r: r["maxrss_mb"])
    categories = sorted({v.category for v in variants})
    return (
        f"{mode}: {len(results)} cases ({', '.join(categories)}); exits {codes}; {out['summary']}; "
        f"slowest {slow['id']} {slow['seconds']} s; peak memory {peak['maxrss_mb']} MB ({peak['id']})"
    )


def outside_root_untouched(battery: dict) -> None:
    base, fx = battery["base"], battery["fx"]
    assert sorted(os.listdir(fx["victim"])) == ["keep.txt"], os.listdir(fx["victim"])
    assert not os.path.exists(base / "outside_root") and not os.path.exists(base / "x")
    assert not any(os.listdir(battery["sentinels"])), os.listdir(battery["sentinels"])


def run_all(battery: dict, check: bool, capsys) -> tuple[str, list[Variant], dict]:
    """The whole battery in one mode, every assertion of the module doc checked; (root, variants, output)."""
    variants, mode = battery["variants"], "check" if check else "real"
    root = launcher_root(battery["base"] / f"{mode}_root", os.path.join(ROOT, "basicsr", "train.py"))
    out = run_battery(battery, mode, cases_for(variants, root, check=check), timeout=90 if check else 180)
    with capsys.disabled():
        print("\n" + report("--check" if check else "real, 2 iterations", variants, out))
    problems = problems_of(variants, out["results"], check=check)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
    outside_root_untouched(battery)
    return root, variants, out


def test_battery_with_check(battery, capsys):
    variants = battery["variants"]
    assert len(variants) >= 300 and len({v.recipe for v in variants if v.category != "random"}) >= 2
    root, variants, out = run_all(battery, True, capsys)
    # --check writes nothing: the root holds what it held before
    assert sorted(os.listdir(root)) == ["basicsr", "experiments"], os.listdir(root)
    assert sorted(os.listdir(os.path.join(root, "experiments"))) == ["existing_run"]
    codes = [r["code"] for r in out["results"]]
    assert codes.count(2) >= len(codes) // 2 and codes.count(0) >= 20  # neither side vacuous


def test_battery_run_for_real(battery, capsys):
    """The same battery without --check: 2 iterations each (refusals are the same)."""
    root, variants, _ = run_all(battery, False, capsys)
    # the controls trained: their last checkpoint is there
    for recipe in ("demo_SFD_cpu", "demo_CSUD_cpu", "train_SFD_RealRRDB_x4"):
        models = os.path.join(root, f"control-{recipe}", "experiments", f"mut_{recipe}", "models")
        assert os.path.isfile(os.path.join(models, "net_g_latest.pth")), recipe
    # a run named after an existing one archived it beside itself, contents and all
    for v in variants:
        if v.what == "name of an existing run":
            experiments = os.listdir(os.path.join(root, v.id, "experiments"))
            archived = [e for e in experiments if e.startswith("existing_run_archived_")]
            assert archived and os.path.isfile(os.path.join(root, v.id, "experiments", archived[0], "marker.txt"))
    allowed = {"basicsr", "experiments", "tb_logger", "inside_root"}
    for v in variants:
        assert set(os.listdir(os.path.join(root, v.id))) <= allowed, (v.id, os.listdir(os.path.join(root, v.id)))


def test_the_payloads_are_live(tmp_path, monkeypatch):
    """Control: the battery's executing tags, pickle and command line do run code under what BasicSR would
    use (PyYAML's full ``Loader``, a full unpickler, its own ``parse_options`` given ``--force``), so a
    missing sentinel above means the payload was refused, not that it was inert."""
    from basicsr.utils import options as bo
    from recipe_cases import PAYLOAD
    from recipe_mutations import TAGS

    parse_options = bo.parse_options
    while hasattr(parse_options, "__wrapped__"):  # basicsr's own, under the plugin's wrappers
        parse_options = parse_options.__wrapped__
    recipe = tmp_path / "r.yml"
    recipe.write_text("name: r\nnum_gpu: 0\nmanual_seed: 0\ndatasets: {}\npath: {}\n")
    sentinel = tmp_path / "control_force"
    monkeypatch.setattr(sys, "argv", ["train.py", "-opt", str(recipe), "--force", PAYLOAD.format(sentinel=sentinel)])
    parse_options(str(tmp_path), is_train=True)
    assert sentinel.exists(), "basicsr's --force_yml abbreviation did not run the payload"

    loader = getattr(yaml, "CLoader", yaml.Loader)
    for i, tag in enumerate(TAGS[:4]):
        sentinel = tmp_path / f"control_{i}"
        try:
            yaml.load(f"x: {tag.format(sentinel=sentinel)}\n", Loader=loader)  # noqa: S506 (the point of the test)
        except Exception:  # noqa: S110  (os.system's return value may not construct; the file tells)
            pass
        assert sentinel.exists(), tag
    sentinel = tmp_path / "control_pickle"
    pickle.loads(pickle.dumps(_Touch(str(sentinel))))  # noqa: S301 (the point of the test)
    assert sentinel.exists()


def test_force_yml_through_basicsr_own_entry_with_the_hook(battery, capsys):
    """``SFD_BASICSR_SAFE_YAML=1``: a fork's unmodified ``basicsr/train.py`` (BasicSR's own file, its own
    ``train_pipeline``) with every ``--force_yml`` spelling and a break-out key, with and without
    ``--check``: one line and exit status 2, nothing runs; valid entries are applied (2 iterations, the
    forced name is the run's folder) and an escaping name is refused."""
    from recipe_cases import FORCE_SPELLINGS, PAYLOAD

    import basicsr

    root = launcher_root(battery["base"] / "fork_root", os.path.join(os.path.dirname(basicsr.__file__), "train.py"))
    recipe = battery["base"] / "recipes" / "control-demo_SR_psnr_cpu.yml"
    sentinels = battery["sentinels"]
    cases, expect = [], {}
    for i, spelling in enumerate(FORCE_SPELLINGS):
        for check in (False, True):
            payload = PAYLOAD.format(sentinel=sentinels / f"pwned_hook{i}")
            argv = [spelling + payload] if spelling.endswith("=") else [spelling, payload]
            cases.append({"id": f"hook-{i}-{int(check)}", "argv": ["-opt", str(recipe), *argv, *["--check"] * check]})
            expect[cases[-1]["id"]] = "is not a recipe key" if spelling.startswith("--force_yml") else "abbreviations"
    cases.append(
        {"id": "hook-valid", "argv": ["-opt", str(recipe), "--force_yml", "name=hooked", "train.total_iter=2"]}
    )
    cases.append({"id": "hook-name", "argv": ["-opt", str(recipe), "--force_yml", "name=../../hooked"]})
    expect["hook-name"] = "name: '../../hooked' holds a path separator"
    for case in cases:
        case.update(entry="script", cwd=root, root=root)
    out = run_battery(battery, "hook", cases, timeout=180, env={"SFD_BASICSR_SAFE_YAML": "1"})
    with capsys.disabled():
        print(f"\nhook: {len(cases)} cases; {out['summary']}")
    for case, r in zip(cases, out["results"], strict=True):
        lines = [line for line in r["tail"].splitlines() if line.strip()]
        assert not r["traceback"] and not r["timed_out"], (case["id"], r["tail"])
        if case["id"] == "hook-valid":
            assert r["code"] == 0, r["tail"]
            continue
        assert r["code"] == 2 and lines[-1].startswith("sfd-basicsr: "), (case["id"], r["tail"])
        assert expect[case["id"]] in lines[-1], (case["id"], lines[-1])
    assert os.path.isfile(os.path.join(root, "experiments", "hooked", "models", "net_g_latest.pth"))
    assert not any(os.listdir(sentinels)), os.listdir(sentinels)
    assert not os.path.exists(battery["base"] / "hooked")
