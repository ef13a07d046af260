"""Tiny variants of the shipped training recipes, their fixtures, and seeded random mutations of them
(for the recipe mutation battery, tests/test_recipe_mutations.py; the targeted cases are in
tests/recipe_cases.py).

A tiny variant is a shipped recipe with its data, CLIP and generator shrunk to a CPU start in a
fraction of a second and a 2-iteration run in a few seconds (the same overrides the end-to-end tests
pass with ``--force_yml``). A mutant is a tiny variant with one to three mutations: a key dropped, a
value swapped for one of another kind, a ``type:`` or a key misspelt, a python (or unknown) tag
inserted, or the text damaged (a line dropped, indented or cut). Tags run ``touch <sentinel>``: a
created sentinel means code ran.
"""

from __future__ import annotations

import copy
import os
import random

import yaml

from sfd_model.csud_model import TINY_NETWORKS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SR_RECIPES = (
    "demo_SFD_cpu.yml",
    "demo_SR_psnr_cpu.yml",
    "train_SFD_RRDB_x4.yml",
    "train_SFD_RRDB_x2.yml",
    "train_SFD_SwinIR_x4.yml",
    "train_SFD_RealRRDB_x4.yml",
)
CSUD_RECIPES = ("demo_CSUD_cpu.yml", "train_CSUD_NAFNet.yml", "train_CSUD_NAFNet_realrain.yml")
RECIPES = SR_RECIPES + CSUD_RECIPES
SWAPS = ("abc", "1e-3", 3.5, -1, 0, True, None, [], [1, "x"], {}, {"k": 1}, "~")
TAGS = (
    '!!python/object/apply:os.system ["touch {sentinel}"]',
    '!!python/object/apply:subprocess.call [["touch", "{sentinel}"]]',
    '!!python/object/new:os.system ["touch {sentinel}"]',
    "!!python/object/apply:builtins.exec [\"open('{sentinel}', 'w')\"]",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/tuple [1, 2]",
    "!include other.yml",
    "!!foo bar",
)


def plain(value):
    """OrderedDicts (and nested ones) as plain dicts and lists, for yaml.safe_dump."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def tiny_variant(recipe: str, pairs: str, rain: str, clip_file: str, clip_configs: str) -> dict:
    """The shipped ``recipe`` shrunk to a CPU start: fixture data, tiny CLIP, tiny networks, no files."""
    opt = yaml.safe_load(open(os.path.join(ROOT, "options", recipe), encoding="utf-8"))
    opt["name"] = "mut_" + recipe[:-4]
    train, val = opt["datasets"]["train"], opt["datasets"]["val"]
    train.update(batch_size_per_gpu=2, num_worker_per_gpu=0)
    if opt["model_type"] == "CSUDModel":
        train.update(dataroot_rain=f"{rain}/train/rain", dataroot_clean=f"{rain}/train/clean", gt_size=32)
        val.update(dataroot_lq=f"{rain}/test/rain", dataroot_gt=f"{rain}/test/clean")
        opt.update(copy.deepcopy(TINY_NETWORKS))
    else:
        lr = f"{pairs}/lr" if opt["scale"] == 4 else f"{pairs}/lr_x{opt['scale']}"
        val.update(dataroot_gt=f"{pairs}/hr", dataroot_lq=lr)
        if opt["model_type"] == "SFDRealModel":
            train.update(dataroot_gt=pairs, meta_info=f"{pairs}/meta_info.txt", use_shuffle=False)
            opt.update(gt_size=64, queue_size=4)
        else:
            train.update(dataroot_gt=f"{pairs}/hr", dataroot_lq=lr, gt_size=64)
        net = opt["network_g"]
        if net["type"] in ("RRDBNet", "SFDRRDBNet"):
            net.update(num_feat=8, num_block=1, num_grow_ch=8)
        elif net["type"] == "SwinIR":
            net.update(embed_dim=12, depths=[1], num_heads=[2], img_size=16)
        if "network_d" in opt:
            opt["network_d"].update(
                clip_model="tiny-rn", clip_config=clip_configs, clip_pretrained=clip_file, feat_mid_channels=16, n_ctx=4
            )
    opt["path"]["pretrain_network_g"] = None
    opt["train"]["perceptual_opt"] = None
    opt["train"]["total_iter"] = 2  # a real run: 2 iterations, one checkpoint, one validation
    opt["logger"].update(print_freq=1, save_checkpoint_freq=2)
    opt["val"]["val_freq"] = 2
    return opt


def make_data(root: str) -> dict[str, str]:
    """Tiny paired SR data under ``root`` (HR 64² crops, LR ×4 and ×2, a meta_info file) and tiny
    unpaired rain data; returns {'pairs', 'rain'}."""
    import cv2

    from sfd_tools.csud.synthetic_rain import make_synthetic_rain
    from sfd_utils.photos import bicubic_down, load_photo, tiles

    pairs, rain = os.path.join(root, "pairs"), os.path.join(root, "rain")
    for sub in ("hr", "lr", "lr_x2"):
        os.makedirs(os.path.join(pairs, sub), exist_ok=True)
    names = []
    for name in ("astronaut", "coffee"):
        for i, crop in enumerate(tiles(load_photo(name), 64, 128)[:2]):
            file = f"{name}_{i}.png"
            bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
            cv2.imwrite(os.path.join(pairs, "hr", file), bgr)
            cv2.imwrite(os.path.join(pairs, "lr", file), cv2.cvtColor(bicubic_down(crop, 4), cv2.COLOR_RGB2BGR))
            cv2.imwrite(os.path.join(pairs, "lr_x2", file), cv2.resize(bgr, (32, 32), interpolation=cv2.INTER_CUBIC))
            names.append(file)
    with open(os.path.join(pairs, "meta_info.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"hr/{n}\n" for n in names))
    make_synthetic_rain(rain, train_size=32, test_size=32, max_per_photo=1, max_test_per_photo=1)
    return {"pairs": pairs, "rain": rain}


def _paths(node, prefix=()) -> list[tuple]:
    """Every key path (and list position) under ``node``."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def _parent(opt, path):
    node = opt
    for key in path[:-1]:
        node = node[key]
    return node


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 2:
        return word + "x"
    i = rng.randrange(len(word))
    kind = rng.choice(("drop", "double", "swap", "case"))
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    if kind == "swap" and i < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word.swapcase()


def mutate_dict(opt: dict, rng: random.Random) -> str:
    """Apply one dictionary mutation in place; return its description."""
    paths = _paths(opt)
    kind = rng.choice(("drop", "drop", "swap", "swap", "swap", "type", "key"))
    if kind == "type":
        types = [p for p in paths if p[-1] in ("type", "model_type") and isinstance(_parent(opt, p)[p[-1]], str)]
        path = rng.choice(types)
        parent = _parent(opt, path)
        parent[path[-1]] = _typo(rng, parent[path[-1]])
        return f"misspelt {'.'.join(map(str, path))} -> {parent[path[-1]]!r}"
    if kind == "key":
        keys = [p for p in paths if isinstance(p[-1], str)]
        path = rng.choice(keys)
        parent = _parent(opt, path)
        new = _typo(rng, path[-1])
        parent[new] = parent.pop(path[-1])
        return f"renamed {'.'.join(map(str, path))} -> {new}"
    path = rng.choice(paths)
    parent = _parent(opt, path)
    if kind == "drop":
        parent.pop(path[-1]) if isinstance(parent, dict) else parent.pop(path[-1])
        return f"dropped {'.'.join(map(str, path))}"
    value = copy.deepcopy(rng.choice(SWAPS))
    parent[path[-1]] = value
    return f"swapped {'.'.join(map(str, path))} -> {value!r}"


def mutate_text(text: str, rng: random.Random, sentinel: str) -> tuple[str, str]:
    """One text mutation: a tag inserted (most often) or the text damaged."""
    lines = text.splitlines()
    kind = rng.choice(("tag", "tag", "tag", "tag_new_key", "drop_line", "indent", "truncate", "bracket"))
    tag = rng.choice(TAGS).format(sentinel=sentinel)
    if kind in ("tag", "tag_new_key"):
        values = [i for i, line in enumerate(lines) if ":" in line and not line.rstrip().endswith(":")]
        items = [i for i, line in enumerate(lines) if line.lstrip().startswith("- ")]
        if kind == "tag" and (values or items):
            i = rng.choice(values + items)
            line = lines[i]
            if line.lstrip().startswith("- "):
                lines[i] = line[: line.index("- ") + 2] + tag
            else:
                lines[i] = line[: line.index(":") + 1] + " " + tag
            return "\n".join(lines) + "\n", f"tag {tag.split()[0]} at line {i + 1}"
        return text + f"extra_key: {tag}\n", f"tag {tag.split()[0]} as a new key"
    if kind == "drop_line" and lines:
        i = rng.randrange(len(lines))
        return "\n".join(lines[:i] + lines[i + 1 :]) + "\n", f"dropped line {i + 1}"
    if kind == "indent" and lines:
        i = rng.randrange(len(lines))
        lines[i] = "   " + lines[i]
        return "\n".join(lines) + "\n", f"indented line {i + 1}"
    if kind == "truncate":
        cut = rng.randrange(1, len(text))
        return text[:cut], f"cut after {cut} characters"
    i = rng.randrange(len(lines))
    lines[i] = lines[i] + " [unclosed"
    return "\n".join(lines) + "\n", f"unclosed bracket at line {i + 1}"


def mutants(tiny: dict[str, dict], n: int, seed: int, sentinel_dir: str):
    """``n`` seeded mutants: yields (index, recipe, description, text, sentinel path)."""
    rng = random.Random(seed)
    names = sorted(tiny)
    for index in range(n):
        recipe = names[index % len(names)]
        opt = copy.deepcopy(tiny[recipe])
        sentinel = os.path.join(sentinel_dir, f"pwned_{index}")
        done = [mutate_dict(opt, rng) for _ in range(rng.choice((0, 1, 1, 1, 2, 3)))]
        text = yaml.safe_dump(plain(opt), sort_keys=False)
        if not done or rng.random() < 0.35:
            text, what = mutate_text(text, rng, sentinel)
            done.append(what)
        yield index, recipe, "; ".join(done), text, sentinel
