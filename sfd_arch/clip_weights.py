"""Where CLIP weights come from: a local file, an open_clip tag (from the Hugging Face hub cache,
downloaded into it on first use, as open_clip does), or random weights. A file is checked against the
requested architecture before it is loaded, so a wrong file is named in one line instead of
PyTorch's list of missing keys. Offline (``SFD_OFFLINE=1``, ``HF_HUB_OFFLINE=1`` or no network) a
tag that is not cached is an error in seconds naming the file and how to supply it; the process's
environment is never changed (see ``sfd_utils/downloads.py``).
"""

from __future__ import annotations

import difflib
import logging
import os

import torch

from sfd_utils.checkpoint import is_safetensors_file, safetensors_header
from sfd_utils.downloads import WeightsUnavailable, cached_hub_file, fetch_hub_file, hub_cache_folder

logger = logging.getLogger("basicsr")

RANDOM_WEIGHTS = (None, "", "none", "random")
# Tiny open_clip configs shipped with the package (tests, smoke benchmarks, learning check).
TINY_CLIP_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clip_configs")
# open_clip's names for a hub repo's weights (open_clip.constants), safetensors first as open_clip does.
HF_WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class CLIPWeightsNotFound(WeightsUnavailable):
    """Raised when CLIP weights are neither on this machine nor downloadable now (a FileNotFoundError)."""


def _import_open_clip():
    import open_clip

    return open_clip


def hub_weight_names(filename: str) -> list[str]:
    """The files open_clip tries for an ``hf_hub`` entry's file name ('' = the repo's default)."""
    if not filename:
        return list(HF_WEIGHT_NAMES)
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def hf_cache_folder(cache_dir: str | None = None) -> str:
    """The hub cache folder searched for tagged weights: ``cache_dir``, else HF_HUB_CACHE, else
    HF_HOME/hub, else ~/.cache/huggingface/hub (what huggingface_hub resolves)."""
    return hub_cache_folder(cache_dir)


def register_clip_config(path: str) -> None:
    """Register open_clip model configs from a JSON file or a folder of them (by file stem)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"clip_config: {path!r} does not exist")
    _import_open_clip().add_model_config(path)


def resolve_clip_weights(
    clip_model: str, clip_pretrained: str | None, cache_dir: str | None = None, download: bool = True
) -> tuple[str | None, dict]:
    """Map ``clip_pretrained`` to a local file and the open_clip kwargs its tag implies.

    A tag is looked up in the Hugging Face hub cache (``cache_dir`` or the hub's default) and in
    open_clip's older download folder (~/.cache/clip) without a request; when it is in neither and
    ``download`` is true, the file open_clip would fetch for that tag is downloaded into the hub cache
    (progress bar; unless downloads are off). open_clip is then given the local file, so it never
    goes to the network itself.

    Returns (path or None for random weights, extra create_model kwargs).
    Raises ValueError for an unknown model or tag and CLIPWeightsNotFound when the weights
    are not on this machine and cannot be downloaded now.
    """
    open_clip = _import_open_clip()
    known = open_clip.list_models()
    if clip_model not in known:
        close = difflib.get_close_matches(clip_model, known, n=5)
        raise ValueError(f"clip_model: unknown open_clip model {clip_model!r}; close matches: {close}")
    if isinstance(clip_pretrained, str) and clip_pretrained.lower() in RANDOM_WEIGHTS:
        clip_pretrained = None
    if clip_pretrained is None:
        return None, {}
    looks_like_path = os.sep in clip_pretrained or clip_pretrained.endswith(
        (".pt", ".pth", ".bin", ".safetensors", ".npz")
    )
    if looks_like_path or os.path.isfile(clip_pretrained):
        path = os.path.expanduser(clip_pretrained)
        if not os.path.isfile(path):
            raise CLIPWeightsNotFound(
                f"clip_pretrained: CLIP weight file {path!r} does not exist. Give the path of an "
                f"open_clip checkpoint for {clip_model!r} (e.g. `clip_pretrained: /path/to/file`)."
            )
        check_clip_file(clip_model, path)
        return path, {}
    cfg = open_clip.get_pretrained_cfg(clip_model, clip_pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(clip_model)
        raise ValueError(
            f"clip_pretrained: {clip_pretrained!r} is neither a file nor an open_clip tag of "
            f"{clip_model!r} (tags: {tags})"
        )
    kwargs = {"force_preprocess_cfg": {"mean": tuple(cfg["mean"]), "std": tuple(cfg["std"])}}
    if cfg.get("quick_gelu"):
        kwargs["force_quick_gelu"] = True
    looked = []
    found = None
    repo_id, names = None, []
    if cfg.get("hf_hub"):
        repo_id, filename = os.path.split(cfg["hf_hub"])  # "org/repo/" -> ("org/repo", "")
        names = hub_weight_names(filename)
        looked.append(f"Hugging Face cache {hf_cache_folder(cache_dir)} for {cfg['hf_hub']}")
        found = cached_hub_file(repo_id, names, cache_dir)
    if found is None and cfg.get("url"):
        url_file = os.path.join(cache_dir or os.path.expanduser("~/.cache/clip"), os.path.basename(cfg["url"]))
        looked.append(url_file)
        if os.path.isfile(url_file):
            found = url_file
    supply = (
        f"looked in: {'; '.join(looked)}. Run once where the hub is reachable (or copy that cache here), or "
        f"download the checkpoint yourself and set `clip_pretrained: /path/to/file` in the YAML."
    )
    what = f"CLIP weights {clip_model}/{clip_pretrained}"
    if found is None and download and repo_id:
        try:
            found = fetch_hub_file(repo_id, names, "clip_pretrained", what, supply, cache_dir)
        except WeightsUnavailable as err:
            raise CLIPWeightsNotFound(str(err)) from None
        logger.info(f"{what}: downloaded {found}")
    if found is None:
        raise CLIPWeightsNotFound(f"clip_pretrained: {what} are not on this machine; {supply}")
    return found, kwargs


def _clip_file_shapes(path: str) -> dict[str, tuple[int, ...]] | None:
    """Tensor shapes of a CLIP weight file, read without loading the tensors (safetensors header,
    or a memory-mapped weights-only torch file); None for formats not read here (TorchScript,
    big_vision .npz). ValueError naming the file when it cannot be read at all."""
    if path.endswith((".npz", ".npy")):
        return None
    try:
        if is_safetensors_file(path):  # header read and bounded by Python (size, depth, metadata)
            header = safetensors_header(path)
            return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__" and "shape" in v}
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as err:
        import zipfile

        if zipfile.is_zipfile(path) and any(n.endswith("constants.pkl") for n in zipfile.ZipFile(path).namelist()):
            return None  # a TorchScript archive (OpenAI's original files): open_clip reads those itself
        first = str(err).splitlines()[0].split(". ")[0] if str(err) else ""
        raise ValueError(
            f"clip_pretrained: {path} cannot be read as CLIP weights ({type(err).__name__}: {first[:120]})"
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"clip_pretrained: {path} holds a {type(obj).__name__}, not CLIP weights (a state dict)")
    return {
        (k[7:] if k.startswith("module.") else k): tuple(v.shape) for k, v in obj.items() if isinstance(v, torch.Tensor)
    }


def _blocks(shapes: dict, prefix: str) -> int:
    """Number of numbered children ``prefix<N>.`` among the keys."""
    return len({k[len(prefix) :].split(".")[0] for k in shapes if k.startswith(prefix)})


def _describe_clip_shapes(shapes: dict) -> tuple[dict, str]:
    """(signature, words) of a CLIP state dict's image tower: family, width, blocks, patch, embed dim."""
    emb = shapes.get("text_projection") or shapes.get("text.text_projection")
    sig = {"embed_dim": emb[-1] if emb else None}
    if "visual.class_embedding" in shapes and "visual.conv1.weight" in shapes:
        sig.update(family="ViT", width=shapes["visual.class_embedding"][0], patch=shapes["visual.conv1.weight"][-1])
        sig["layers"] = _blocks(shapes, "visual.transformer.resblocks.")
        words = f"a ViT (visual.transformer: width {sig['width']}, patch {sig['patch']}, {sig['layers']} blocks)"
    elif any(k.startswith("visual.attnpool.") for k in shapes):
        sig.update(family="ModifiedResNet", width=(shapes.get("visual.layer1.0.conv1.weight") or (0, 0))[1])
        sig["layers"] = [_blocks(shapes, f"visual.layer{i}.") for i in range(1, 5)]
        words = f"a ModifiedResNet (visual.layer1-4 with {sig['layers']} blocks, width {sig['width']})"
    elif any(k.startswith("visual.trunk.") for k in shapes):
        sig["family"] = "timm"
        words = "a timm image tower (visual.trunk.*)"
    else:
        sig["family"] = None
        words = f"no CLIP image tower (no visual.* keys; first keys: {', '.join(sorted(shapes)[:3]) or 'none'})"
    if sig["embed_dim"]:
        words += f", embedding {sig['embed_dim']}"
    return sig, words


def check_clip_file(clip_model: str, path: str) -> None:
    """Refuse, in one line, a CLIP weight file made for another architecture than ``clip_model``
    (PyTorch would print every missing and unexpected key, naming neither the file nor the model).
    Compares the image tower's kind, width, blocks, patch size and the embedding size with the
    model's open_clip config; formats not read cheaply (TorchScript, .npz) are left to open_clip."""
    shapes = _clip_file_shapes(path)
    cfg = _import_open_clip().get_model_config(clip_model)
    if shapes is None or not cfg:
        return
    got, words = _describe_clip_shapes(shapes)
    vision = cfg.get("vision_cfg") or {}
    if vision.get("timm_model_name"):
        want = {"family": "timm"}
        want_words = f"a timm image tower ({vision['timm_model_name']})"
    else:
        from open_clip.model import CLIPVisionCfg

        v = CLIPVisionCfg(**vision)
        if isinstance(v.layers, (list, tuple)):
            want = {"family": "ModifiedResNet", "layers": list(v.layers), "width": v.width}
            want_words = f"a ModifiedResNet ({list(v.layers)} blocks, width {v.width})"
        else:
            want = {"family": "ViT", "layers": v.layers, "width": v.width, "patch": v.patch_size}
            want_words = f"a ViT (width {v.width}, patch {v.patch_size}, {v.layers} blocks)"
    want["embed_dim"] = cfg.get("embed_dim")
    want_words += f", embedding {want['embed_dim']}"
    if any(got.get(k) is not None and got.get(k) != w for k, w in want.items()) or got["family"] is None:
        raise ValueError(
            f"clip_pretrained: {path} does not fit clip_model {clip_model!r}: the file looks like {words}, "
            f"while {clip_model} is {want_words}"
        )
