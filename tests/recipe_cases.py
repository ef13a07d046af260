"""The targeted part of the recipe battery (tests/test_recipe_mutations.py): for each base recipe, the
malformed values, odd YAML, unfit files, unsafe names, machine limits and command lines that issue 28
found escaping as tracebacks, code execution, hangs or memory kills, and more of the same kinds.

:func:`targeted` yields :class:`Variant` objects: the recipe text (or a special ``-opt`` path), extra
command-line arguments, the sentinel a payload would create, and where the outcome is known the
expected exit status and a piece of the one-line message. Raw YAML (``.inf``, ``!!float abc``, dates)
is spliced in for a placeholder value after the recipe is dumped.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import yaml
from recipe_mutations import plain

RAW = "@RAW@"
PAYLOAD = 'name"];__import__("os").system("touch {sentinel}");opt["x=1'
TOUCH_TAG = '!!python/object/apply:os.system ["touch {sentinel}"]'


@dataclass
class Variant:
    id: str
    category: str
    recipe: str
    what: str
    text: str | None = None  # the recipe's text; None: ``opt_path`` is given as it is
    opt_path: str | None = None
    argv: list[str] = field(default_factory=list)
    expect: tuple[int, str] | None = None  # (exit status, part of the last line)
    sentinel: str = ""
    entry: str | None = None  # "script" (python basicsr/train.py) or "console" (sfd-train); None: either


def _set(path: str, value) -> Callable[[dict], None]:
    def apply(opt: dict) -> None:
        keys = path.split(".")
        node = opt
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return apply


def _drop(path: str) -> Callable[[dict], None]:
    def apply(opt: dict) -> None:
        keys = path.split(".")
        node = opt
        for key in keys[:-1]:
            node = node[key]
        node.pop(keys[-1], None)

    return apply


def _dump(opt: dict, raw: str | None = None) -> str:
    text = yaml.safe_dump(plain(opt), sort_keys=False, allow_unicode=True)
    if raw is not None:
        text = text.replace(f"'{RAW}'", raw).replace(RAW, raw)
    return text


def _size_key(opt: dict) -> str:
    net = opt["network_g"]
    return next(f"network_g.{k}" for k in ("num_feat", "width", "embed_dim") if k in net)


def _number_cases(opt: dict) -> list[tuple]:
    """(what, mutation, raw YAML or None, expected (status, text) or None) for numbers out of range."""
    size = _size_key(opt)
    cases = [
        ("manual_seed -1", _set("manual_seed", -1), None, (2, "manual_seed")),
        ("manual_seed 2**40", _set("manual_seed", 2**40), None, (2, "manual_seed")),
        ("manual_seed 5000 digits", _set("manual_seed", RAW), "9" * 5000, (2, "manual_seed")),
        ("manual_seed 1.5", _set("manual_seed", 1.5), None, (2, "manual_seed")),
        ("manual_seed text", _set("manual_seed", "abc"), None, (2, "manual_seed")),
        ("manual_seed true", _set("manual_seed", True), None, (2, "manual_seed")),
        ("total_iter .inf", _set("train.total_iter", RAW), ".inf", (2, "train.total_iter")),
        ("total_iter .nan", _set("train.total_iter", RAW), ".nan", (2, "train.total_iter")),
        ("total_iter 1.5", _set("train.total_iter", 1.5), None, (2, "train.total_iter")),
        ("total_iter null", _set("train.total_iter", None), None, (2, "train.total_iter")),
        ("total_iter 0", _set("train.total_iter", 0), None, (2, "train.total_iter")),
        ("total_iter 10**30", _set("train.total_iter", 10**30), None, (2, "train.total_iter")),
        ("enlarge ratio 0", _set("datasets.train.dataset_enlarge_ratio", 0), None, (2, "dataset_enlarge_ratio")),
        ("enlarge ratio 1e9", _set("datasets.train.dataset_enlarge_ratio", 1e9), None, (2, "dataset_enlarge_ratio")),
        ("enlarge ratio -1", _set("datasets.train.dataset_enlarge_ratio", -1), None, (2, "dataset_enlarge_ratio")),
        ("enlarge ratio .inf", _set("datasets.train.dataset_enlarge_ratio", RAW), ".inf", (2, "dataset_enlarge")),
        (f"{size} 1e18", _set(size, 1e18), None, (2, size)),
        (f"{size} 10**18", _set(size, 10**18), None, (2, size)),
        (f"{size} 2**21", _set(size, 2**21), None, (2, size)),
        (f"{size} -8", _set(size, -8), None, None),
        (f"{size} text", _set(size, "wide"), None, (2, size)),
        ("optim_g.weight_decay 1e308", _set("train.optim_g.weight_decay", 1e308), None, (2, "weight_decay")),
        ("optim_g.weight_decay -1", _set("train.optim_g.weight_decay", -1), None, (2, "weight_decay")),
        ("optim_g.lr -1", _set("train.optim_g.lr", -1.0), None, (2, "train.optim_g")),
        ("optim_g.lr .inf", _set("train.optim_g.lr", RAW), ".inf", (2, "train.optim_g.lr")),
        ("optim_g.betas [2, 0.9]", _set("train.optim_g.betas", [2, 0.9]), None, (2, "beta")),
        ("batch 0", _set("datasets.train.batch_size_per_gpu", 0), None, (2, "batch_size_per_gpu")),
        ("batch 10**9", _set("datasets.train.batch_size_per_gpu", 10**9), None, (2, "batch_size_per_gpu")),
        ("batch 2.5", _set("datasets.train.batch_size_per_gpu", 2.5), None, (2, "batch_size_per_gpu")),
        ("workers -1", _set("datasets.train.num_worker_per_gpu", -1), None, (2, "num_worker_per_gpu")),
        ("gt_size 0", _set("datasets.train.gt_size", 0), None, (2, "gt_size")),
        ("gt_size 65.5", _set("datasets.train.gt_size", 65.5), None, (2, "gt_size")),
        ("gt_size 100000", _set("datasets.train.gt_size", 100000), None, (2, "gt_size")),
        ("print_freq 0", _set("logger.print_freq", 0), None, (2, "logger.print_freq")),
        ("save_checkpoint_freq .inf", _set("logger.save_checkpoint_freq", RAW), ".inf", (2, "save_checkpoint")),
        ("val_freq 0", _set("val.val_freq", 0), None, (2, "val.val_freq")),
        ("val_freq 0.5", _set("val.val_freq", 0.5), None, (2, "val.val_freq")),
        ("scheduler gamma 0", _set("train.scheduler.gamma", 0), None, (2, "gamma")),
        ("scheduler milestones [-1]", _set("train.scheduler.milestones", [-1]), None, (2, "milestones")),
        ("scale 0", _set("scale", 0), None, (2, "scale")),
        ("scale 100", _set("scale", 100), None, (2, "scale")),
        ("num_gpu -1", _set("num_gpu", -1), None, (2, "num_gpu")),
        ("num_gpu text", _set("num_gpu", "two"), None, (2, "num_gpu")),
    ]
    if "ema_decay" in opt["train"]:
        cases.append(("ema_decay 2", _set("train.ema_decay", 2), None, (2, "ema_decay")))
    if "net_d_iters" in opt["train"]:
        cases += [
            ("net_d_iters null", _set("train.net_d_iters", None), None, (2, "net_d_iters")),
            ("net_d_iters 0", _set("train.net_d_iters", 0), None, (2, "net_d_iters")),
            ("net_d_init_iters -1", _set("train.net_d_init_iters", -1), None, (2, "net_d_init_iters")),
        ]
    if "pixel_opt" in opt["train"]:
        cases.append(("loss_weight .nan", _set("train.pixel_opt.loss_weight", RAW), ".nan", (2, "loss_weight")))
    return cases


def _yaml_cases(opt: dict) -> list[tuple]:
    """(what, text transform of the dumped recipe, expected) for odd YAML."""

    def raw_at(path: str, raw: str) -> Callable[[str], str]:
        def make(_text: str) -> str:
            o = copy.deepcopy(opt)
            _set(path, RAW)(o)
            return _dump(o, raw)

        return make

    def under(section: str, line: str) -> Callable[[str], str]:
        return lambda text: text.replace(f"\n{section}:\n", f"\n{section}:\n{line}\n", 1)

    deep = "deep: " + "[" * 25000 + "]" * 25000 + "\n"
    laughs = "lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
    )
    return [
        ("manual_seed 2001-13-45", raw_at("manual_seed", "2001-13-45"), (2, "manual_seed")),
        ("manual_seed 2001-12-14", raw_at("manual_seed", "2001-12-14"), (2, "manual_seed")),
        ("total_iter !!float abc", raw_at("train.total_iter", "!!float abc"), (2, "train.total_iter")),
        ("total_iter !!int 0xZZ", raw_at("train.total_iter", "!!int 0xZZ"), (2, "train.total_iter")),
        ("name !!binary", raw_at("name", "!!binary aGVsbG8="), (2, "refused tag !!binary")),
        ("val !!set", raw_at("val.metrics", "!!set {a, b}"), (2, "refused tag !!set")),
        ("python tag in optim", raw_at("train.optim_g.lr", TOUCH_TAG), (2, "refused tag !!python")),
        ("int key under path", under("path", "  5: x"), (2, "under path is 5")),
        ("null key under train", under("train", "  ~: 1"), (2, "under train is null")),
        ("int key under datasets.train", lambda t: t.replace("\n  train:\n", "\n  train:\n    7: x\n", 1), (2, "7")),
        ("duplicate name", lambda t: t + "name: again\n", (2, "given twice")),
        ("list key", lambda t: t + "? [a, b]\n: 1\n", (2, "not text")),
        ("deep nesting 25k", lambda t: t + deep, (2, "levels deep")),
        ("billion laughs", lambda t: t + laughs, (2, "aliases are expanded")),
        ("recursive alias", lambda t: t + "loop: &l [1, *l]\n", (2, "refers to the node")),
        ("unclosed flow", lambda t: t + "x: [1, 2\n", (2, "not valid YAML")),
        ("two documents", lambda t: t + "---\nname: other\n", (2, "not valid YAML")),
        ("tab indentation", lambda t: t.replace("\n  ", "\n\t", 1), (2, "not valid YAML")),
        ("a list document", lambda t: "- 1\n- 2\n", (2, "mapping of options")),
        ("empty file", lambda t: "", (2, "empty")),
        ("only a comment", lambda t: "# nothing\n", (2, "empty")),
        ("CRLF line ends", lambda t: t.replace("\n", "\r\n"), (0, "")),
        ("merge keys", lambda t: t.replace("\ntrain:\n", "\nbase: &b {warmup_iter: -1}\ntrain:\n  <<: *b\n", 1), None),
    ]


def _path_cases(opt: dict, fx: dict) -> list[tuple]:
    """(what, mutation, expected) for files that are missing, special, empty, too large or pickled code."""
    cases = [
        ("pretrain_network_g missing", _set("path.pretrain_network_g", fx["missing"]), (2, "pretrain_network_g")),
        ("pretrain_network_g /dev/zero", _set("path.pretrain_network_g", "/dev/zero"), (2, "pretrain_network_g")),
        ("pretrain_network_g a folder", _set("path.pretrain_network_g", fx["folder"]), (2, "pretrain_network_g")),
        ("pretrain_network_g empty", _set("path.pretrain_network_g", fx["empty"]), (2, "pretrain_network_g")),
        ("pretrain_network_g pickled code", _set("path.pretrain_network_g", fx["evil_pth"]), (2, "")),
        ("pretrain_network_g text", _set("path.pretrain_network_g", fx["text"]), (2, "")),
        ("resume_state missing", _set("path.resume_state", fx["missing"]), (2, "resume_state")),
        ("resume_state /dev/zero", _set("path.resume_state", "/dev/zero"), (2, "resume_state")),
        ("resume_state pickled code", _set("path.resume_state", fx["evil_pth"]), (2, "")),
        ("dataroot missing", _set(f"datasets.train.{_root_key(opt)}", fx["missing"]), (2, "datasets.train")),
        ("dataroot a file", _set(f"datasets.train.{_root_key(opt)}", fx["text"]), (2, "datasets.train")),
        ("dataroot /dev/null", _set(f"datasets.train.{_root_key(opt)}", "/dev/null"), (2, "datasets.train")),
        ("dataroot a FIFO", _set(f"datasets.train.{_root_key(opt)}", fx["fifo"]), (2, "datasets.train")),
        ("dataroot a symlink loop", _set(f"datasets.train.{_root_key(opt)}", fx["loop"]), (2, "datasets.train")),
        ("val dataroot missing", _set("datasets.val.dataroot_gt", fx["missing"]), (2, "datasets.val")),
        ("a /dev/zero value", _set("datasets.val.name", "/dev/zero"), (2, "datasets.val.name")),
    ]
    if opt["datasets"]["train"]["type"] == "PairedImageDataset":
        cases += [
            ("meta_info_file /dev/zero", _set("datasets.train.meta_info_file", "/dev/zero"), (2, "meta_info_file")),
            ("meta_info_file 70 MB", _set("datasets.train.meta_info_file", fx["sparse"]), (2, "meta_info_file")),
            ("meta_info_file missing", _set("datasets.train.meta_info_file", fx["missing"]), (2, "meta_info_file")),
        ]
    if opt.get("network_d", {}).get("type") == "SFDDiscriminator":
        cases += [
            ("clip_pretrained /dev/zero", _set("network_d.clip_pretrained", "/dev/zero"), (2, "clip_pretrained")),
            ("clip_pretrained missing", _set("network_d.clip_pretrained", fx["missing"]), (2, "clip_pretrained")),
        ]
    return cases


def _root_key(opt: dict) -> str:
    return next(k for k in ("dataroot_gt", "dataroot_rain") if k in opt["datasets"]["train"])


def _name_cases(fx: dict) -> list[tuple]:
    victim = fx["victim"]
    return [
        ("name ../../victim", _set("name", "../../victim"), (2, "name")),
        ("name absolute existing folder", _set("name", victim), (2, "name")),
        ("name empty", _set("name", ""), (2, "name")),
        ("name .", _set("name", "."), (2, "name")),
        ("name ..", _set("name", ".."), (2, "name")),
        ("name a/b", _set("name", "a/b"), (2, "name")),
        ("name with NUL", _set("name", "x\x00y"), (2, "name")),
        ("name 300 characters", _set("name", "n" * 300), (2, "name")),
        ("name padded", _set("name", " padded "), (2, "name")),
        ("name a number", _set("name", 5), (2, "name")),
        ("name null", _set("name", None), (2, "name")),
        ("name of an existing run", _set("name", "existing_run"), (0, "")),
        ("path.extra absolute", _set("path.extra_folder", os.path.join(victim, "made_by_recipe")), (2, "path.extra")),
        ("path.extra ../", _set("path.extra_folder", "../outside_root"), (2, "path.extra_folder")),
        ("path.extra inside", _set("path.extra_folder", "inside_root/extra"), (0, "")),
        ("path.visualization absolute", _set("path.visualization", os.path.join(victim, "vis")), (0, "")),
    ]


def _machine_cases(opt: dict) -> list[tuple]:
    cases = [
        ("num_gpu 1 without CUDA", _set("num_gpu", 1), (2, "no CUDA device")),
        ("num_gpu 4 without CUDA", _set("num_gpu", 4), (2, "no CUDA device")),
        ("workers 48", _set("datasets.train.num_worker_per_gpu", 48), (2, "num_worker_per_gpu")),
        ("batch 100000", _set("datasets.train.batch_size_per_gpu", 100000), (2, "batch_size_per_gpu")),
        ("batch 64 > samples", _set("datasets.train.batch_size_per_gpu", 64), (2, "batch_size_per_gpu")),
        ("prefetch cuda", _set("datasets.train.prefetch_mode", "cuda"), (2, "prefetch_mode")),
        ("io_backend unknown key", _set("datasets.train.io_backend.foo", 1), (2, "io_backend")),
        ("io_backend lmdb", _set("datasets.train.io_backend.type", "lmdb"), (2, "")),
        ("io_backend misspelt", _set("datasets.train.io_backend.type", "Disk"), (2, "io_backend.type")),
        ("train set dropped", _drop("datasets.train"), (2, "datasets.train")),
    ]
    if opt["datasets"]["train"]["type"] == "PairedImageDataset" and opt.get("scale") == 4:
        cases += [
            ("scale 2 on x4 data", _set("scale", 2), (2, "scale 2 does not fit")),
            ("scale 3 on x4 data", _set("scale", 3), (2, "scale 3 does not fit")),
            ("gt_size 1000 > images", _set("datasets.train.gt_size", 1000), (2, "gt_size")),
        ]
    return cases


def targeted(tiny: dict[str, dict], base: list[str], fx: dict, sentinel_dir: str) -> Iterator[Variant]:
    """Every targeted variant of every recipe in ``base`` (tiny variants in ``tiny``); ``fx``: fixture
    files (missing, folder, empty, text, evil_pth, fifo, loop, sparse, victim, big_list, big_recipe)."""
    n = 0

    def sentinel() -> str:
        return os.path.join(sentinel_dir, f"pwned_t{n}")

    for recipe in base:
        opt = tiny[recipe]
        stem = recipe[:-4]
        groups = [("numbers", _number_cases(opt)), ("paths", _path_cases(opt, fx)), ("names", _name_cases(fx))]
        groups.append(("machine", _machine_cases(opt)))
        for category, cases in groups:
            for case in cases:
                what, mutate, *rest = case
                raw, expect = (rest[0], rest[1]) if len(rest) == 2 else (None, rest[0])
                mutated = copy.deepcopy(opt)
                mutate(mutated)
                n += 1
                text = _dump(mutated, raw).replace("{sentinel}", sentinel())
                yield Variant(
                    f"{category}-{n}-{stem}", category, recipe, what, text, expect=expect, sentinel=sentinel()
                )
        for what, transform, expect in _yaml_cases(opt):
            n += 1
            text = transform(_dump(opt)).replace("{sentinel}", sentinel())
            yield Variant(f"yaml-{n}-{stem}", "yaml", recipe, what, text, expect=expect, sentinel=sentinel())
    first = base[0]
    specials = [
        ("-opt /dev/zero", "/dev/zero", (2, "not a regular file")),
        ("-opt a folder", fx["folder"], (2, "is a folder")),
        ("-opt missing", fx["missing"], (2, "does not exist")),
        ("-opt a FIFO", fx["fifo"], (2, "not a regular file")),
        ("-opt a 50 MB flow list", fx["big_list"], (2, "bytes")),
        ("-opt a 2 MB recipe", fx["big_recipe"], (2, "bytes")),
        ("-opt a symlink loop", fx["loop"], (2, "cannot be read")),
    ]
    for what, path, expect in specials:
        n += 1
        yield Variant(f"input-{n}", "input", first, what, opt_path=path, expect=expect, sentinel=sentinel())


# Every spelling argparse would read as --force_yml with abbreviations on, and the exact flag.
FORCE_SPELLINGS = ("--force_yml", "--force_y", "--force", "--forc", "--fo", "--f", "--force_yml=", "--force=", "--f=")


def command_lines(tiny: dict[str, dict], recipes: list[str], sentinel_dir: str) -> Iterator[Variant]:
    """Command-line abuse on valid recipes: every ``--force_yml`` spelling with a break-out key, python
    tags and code-like lists as values, abbreviated and unknown flags; and valid entries applied."""
    n = 0
    for recipe in recipes:
        text, stem = _dump(tiny[recipe]), recipe[:-4]
        for spelling in FORCE_SPELLINGS:
            for entry in ("script", "console"):  # both entry points, every spelling
                n += 1
                sentinel = os.path.join(sentinel_dir, f"pwned_c{n}")
                payload = PAYLOAD.format(sentinel=sentinel)
                argv = [spelling + payload] if spelling.endswith("=") else [spelling, payload]
                expect = (2, "is not a recipe key" if spelling in ("--force_yml", "--force_yml=") else "abbreviations")
                yield Variant(f"cmd-{n}-{stem}", "command line", recipe, f"{spelling} break-out ({entry})", text,
                              argv=argv, expect=expect, sentinel=sentinel, entry=entry)  # fmt: skip
        others = [
            ("tag value", ["--force_yml", "network_g.num_in_ch=" + TOUCH_TAG], (2, "refused tag")),
            ("code-like list value", ["--force_yml", 'train.x=[__import__("os").system("touch {sentinel}")]'], (0, "")),
            ("entry without =", ["--force_yml", "train.total_iter=2", "manual_seed:3"], (2, "key=value")),
            ("valid entries applied", ["--force_yml", "train.total_iter=2", "manual_seed=3"], (0, "")),
            ("seed -1 by force_yml", ["--force_yml", "manual_seed=-1"], (2, "manual_seed")),
            ("name ../x by force_yml", ["--force_yml", "name=../x"], (2, "name")),
            ("missing section", ["--force_yml", "trian.total_iter=3"], (2, "did you mean train")),
            ("-o abbreviation", ["-o", "x.yml"], (2, "abbreviations")),
            ("--auto abbreviation", ["--auto"], (2, "abbreviations")),
            ("unknown flag", ["--frobnicate"], (2, "unrecognized arguments")),
            ("bad launcher", ["--launcher", "mpi"], (2, "launcher")),
            ("--local-rank spelling", ["--local-rank=0"], (0, "")),
        ]
        for what, argv, expect in others:
            n += 1
            sentinel = os.path.join(sentinel_dir, f"pwned_c{n}")
            argv = [a.replace("{sentinel}", sentinel) for a in argv]
            yield Variant(
                f"cmd-{n}-{stem}", "command line", recipe, what, text, argv=argv, expect=expect, sentinel=sentinel
            )
