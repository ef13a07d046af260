"""SFD-IQA: opinion-unaware no-reference IQA from a trained Feat-D + learnable prompt pair.

docs/method.md, SFD, "SFD-IQA". An image is tiled into crops of the training patch size (default 256;
an image smaller than a crop is resized up, keeping its aspect ratio; the last row/column of tiles
is aligned to the border). Per crop c, with the trained discriminator as it is:

    q_feat(c) = mean_m mean_pos sigmoid(D_m(E_m(c)))      q_text(c) = sigmoid(z(c))
    Q(I)      = mean_c [alpha * q_feat(c) + (1 - alpha) * q_text(c)],  alpha = 0.5

Higher is better; Q, q_feat and q_text are in [0, 1]. The discriminator is loaded from the
checkpoint SFD training writes (``net_d_<iter>.pth``: Feat-D heads, prompt contexts and the JSON
config in ``_extra_state``; traiNNer-redux writes the same entries as ``net_d_<iter>.safetensors``);
CLIP is rebuilt from the model name and weights recorded there.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sfd_arch.clip_backbone import RANDOM_WEIGHTS, TINY_CLIP_CONFIGS, CLIPWeightsNotFound, _import_open_clip
from sfd_arch.clip_provenance import WEIGHT_SUFFIXES, file_sha256, find_by_hash
from sfd_arch.sfd_discriminator_arch import STRUCTURAL_KEYS, SFDDiscriminator, decode_config
from sfd_utils.checkpoint import CheckpointError, is_safetensors_file, read_checkpoint  # noqa: F401 (re-exported)

DEFAULT_TILE = 256
# Config keys an SFD-IQA checkpoint must record to rebuild the discriminator.
REQUIRED_CONFIG_KEYS = (*STRUCTURAL_KEYS, "clip_pretrained")


class SmallImageWarning(UserWarning):
    """An image smaller than the SFD-IQA tile was enlarged before scoring (its score is of the enlargement)."""


class SFDCheckpointError(ValueError):
    """The file is not a (compatible) SFD discriminator checkpoint; the message says what is missing."""


@dataclass
class IQAScore:
    """Scores of one image: q (= Q), q_feat, q_text in [0, 1] (NaN for a head that is off), crops used."""

    q: float
    q_feat: float
    q_text: float
    n_crops: int

    def as_dict(self) -> dict:
        return asdict(self)


# -- checkpoint --------------------------------------------------------------------------------------
def _read_checkpoint(path: str):
    try:
        return read_checkpoint(path)  # weights-only torch.load or safetensors: never runs code
    except CheckpointError as err:
        hint = "" if is_safetensors_file(path) else " SFD-IQA needs the net_d_<iter>.pth that SFD training saves."
        raise SFDCheckpointError(f"{err}{hint}") from err


def load_sfd_checkpoint(path: str) -> tuple[dict, dict]:
    """Read an SFD discriminator checkpoint -> (config dict, state_dict).

    Accepts BasicSR's ``{'params': state_dict}`` (what SFDModel saves), ``{'state_dict': ...}``, a
    raw state_dict (traiNNer-redux's ``.pth``) or a safetensors file (traiNNer-redux's default: the
    config travels as the uint8 ``_extra_state`` tensor); torch files load with ``weights_only=True``.
    Raises FileNotFoundError or SFDCheckpointError naming what is missing.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SFD-IQA checkpoint {path!r} does not exist")
    obj = _read_checkpoint(path)
    if not isinstance(obj, dict):
        raise SFDCheckpointError(f"{path}: expected a dict (state_dict or {{'params': ...}}), got {type(obj).__name__}")
    for key in ("params", "state_dict"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    state = {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}
    if "_extra_state" not in state:
        keys = sorted(state)
        shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
        raise SFDCheckpointError(
            f"{path} is not an SFD discriminator checkpoint: it has no `_extra_state` entry (the JSON config "
            f"SFDDiscriminator records: clip_model, clip_pretrained, feat_layers, n_ctx, ...). Its "
            f"{len(keys)} keys start with: {shown}. Use the net_d_<iter>.pth of an SFDModel run, not net_g."
        )
    try:
        config = decode_config(state["_extra_state"])
    except ValueError as err:
        raise SFDCheckpointError(f"{path}: {err}") from err
    missing = [k for k in REQUIRED_CONFIG_KEYS if k not in config]
    if missing:
        raise SFDCheckpointError(f"{path}: the recorded SFD config lacks {missing}; it cannot rebuild the network")
    return config, state


def _ensure_clip_config(clip_model: str, clip_config: str | None) -> None:
    """Register the open_clip config a checkpoint needs (its recorded file or a shipped tiny one)."""
    open_clip = _import_open_clip()
    if clip_config:
        return  # FrozenCLIP registers it (and names the key if the file is gone)
    if clip_model not in open_clip.list_models():
        tiny = os.path.join(TINY_CLIP_CONFIGS, f"{clip_model}.json")
        if os.path.isfile(tiny):
            open_clip.add_model_config(tiny)


def build_discriminator(
    config: dict,
    state: dict,
    clip_pretrained: str | None = None,
    clip_cache_dir: str | None = None,
    allow_random_clip: bool = False,
    source: str = "checkpoint",
) -> SFDDiscriminator:
    """SFDDiscriminator with the recorded options and the checkpoint's weights (strict), in eval mode.

    clip_pretrained None uses the CLIP weights recorded in the config; any other value overrides them
    ('random' = random weights). Random CLIP weights are refused unless ``allow_random_clip``: a fresh
    random CLIP is not the one the heads were trained on, so its scores mean nothing.
    """
    recorded = config.get("clip_pretrained")
    weights = recorded if clip_pretrained is None else clip_pretrained
    if clip_pretrained is None:
        weights = _locate_recorded_weights(config, weights, source)
    is_random = weights is None or (isinstance(weights, str) and weights.lower() in RANDOM_WEIGHTS)
    if is_random and not allow_random_clip:
        raise SFDCheckpointError(
            f"{source}: CLIP weights would be random (recorded clip_pretrained={recorded!r}, override="
            f"{clip_pretrained!r}). The heads only make sense with the CLIP they were trained with: pass "
            "clip_pretrained=<that CLIP's weight file or tag> (CLI: --clip-pretrained)."
        )
    _ensure_clip_config(config["clip_model"], config.get("clip_config"))
    try:
        disc = SFDDiscriminator(
            clip_model=config["clip_model"],
            clip_pretrained=None if is_random else weights,
            feat_layers=config["feat_layers"],
            feat_mid_channels=config["feat_mid_channels"],
            feat_norm=config["feat_norm"],
            feat_head_depth=config["feat_head_depth"],  # decode_config fills what older checkpoints lack
            feat_head_kernel=config["feat_head_kernel"],
            n_ctx=config["n_ctx"],
            pos_words=config.get("pos_words", "high quality photo."),
            neg_words=config.get("neg_words", "low quality photo."),
            use_feat=config["use_feat"],
            use_text=config["use_text"],
            clip_cache_dir=clip_cache_dir,
            clip_config=config.get("clip_config"),
            clip_input_size=config.get("clip_input_size"),  # absent before it existed: as given
        )
    except CLIPWeightsNotFound as err:
        hint = "recorded in the checkpoint" if clip_pretrained is None else "given as clip_pretrained"
        raise CLIPWeightsNotFound(
            f"{source}: CLIP weights {weights!r} ({hint}) are not available: {err} Pass clip_pretrained=<local "
            "file of the same CLIP> (CLI: --clip-pretrained) to use another copy."
        ) from err
    given, trained = disc.config.get("clip_weights_sha256"), config.get("clip_weights_sha256")
    if given and trained and given != trained:
        warnings.warn(
            f"{source}: the heads were trained with CLIP weights of sha256 {trained[:12]} "
            f"({config.get('clip_weights_file')}); {disc.config.get('clip_weights_file')} has sha256 {given[:12]}. "
            "Scores from other weights than the training ones are not comparable.",
            stacklevel=2,
        )
    try:
        disc.load_state_dict(state, strict=True)
    except RuntimeError as err:
        own = set(disc.state_dict())
        missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
        raise SFDCheckpointError(
            f"{source}: weights do not fit the recorded SFD config (missing keys: {missing[:8]}, unexpected "
            f"keys: {unexpected[:8]}; {str(err).splitlines()[0]})"
        ) from err
    return disc.eval()


def _locate_recorded_weights(config: dict, weights, source: str):
    """The recorded CLIP weight file, or a file with its recorded hash found next to the checkpoint
    (its folder, the folder above and ``pretrained_models`` beside that) when it has moved."""
    sha = config.get("clip_weights_sha256")
    if not (sha and isinstance(weights, str)) or os.path.isfile(os.path.expanduser(weights)):
        return weights
    if not (os.sep in weights or weights.endswith(WEIGHT_SUFFIXES)):
        return weights  # an open_clip tag: the cache is searched by resolve_clip_weights
    here = os.path.dirname(os.path.abspath(source))
    up = os.path.dirname(here)
    found = find_by_hash(sha, [here, up, os.path.join(up, "pretrained_models")], config.get("clip_weights_size"))
    if found is None:
        raise CLIPWeightsNotFound(
            f"{source}: the CLIP weights it was trained with ({weights}, sha256 {sha[:12]}) are not there any more "
            f"and no file with that hash is next to the checkpoint; pass clip_pretrained=<that file> "
            "(CLI: --clip-pretrained)"
        )
    warnings.warn(f"{source}: recorded CLIP weights {weights} moved; using {found} (same sha256)", stacklevel=3)
    return found


# -- tiling --------------------------------------------------------------------------------------------
def tile_starts(length: int, tile: int, stride: int | None = None) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering [0, length) (length >= tile), every
    ``stride`` pixels, the last one aligned to the border."""
    stride = stride or tile
    if length <= tile:
        return [0]
    return list(range(0, length - tile, stride)) + [length - tile]


def upsized_shape(h: int, w: int, tile: int) -> tuple[int, int]:
    """(h, w) scaled up (aspect kept) so that the short side is at least ``tile``; unchanged if already."""
    if h <= 0 or w <= 0:
        raise ValueError(f"SFD-IQA: empty image ({h}x{w})")
    if min(h, w) >= tile:
        return h, w
    s = tile / min(h, w)
    return max(tile, round(h * s)), max(tile, round(w * s))


def to_float_rgb(region) -> torch.Tensor:
    """An image region -> (3, h, w) float32 tensor in [0, 1].

    numpy: (h, w), (h, w, 1), (h, w, 3) or (h, w, 4) RGB(A), uint8 (/255), uint16 (/65535) or float
    (clipped to [0, 1]); gray is replicated, alpha dropped. torch: (3, h, w) float in [0, 1].
    """
    if isinstance(region, torch.Tensor):
        return region.float().clamp(0, 1)
    arr = np.asarray(region)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"SFD-IQA: expected an (H, W[, C]) image with 1-4 channels, got shape {arr.shape}")
    if arr.shape[2] in (1, 2):
        arr = np.repeat(arr[..., :1], 3, axis=2)  # gray (+ alpha): replicate the gray channel
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(arr)).float() / 255.0
    elif arr.dtype == np.uint16:
        t = torch.from_numpy(np.ascontiguousarray(arr).astype(np.float32)) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).clamp(0, 1)
    else:
        raise ValueError(f"SFD-IQA: unsupported image dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    return t.permute(2, 0, 1)


# -- scorer ---------------------------------------------------------------------------------------------
class SFDIQA:
    """Scores images with a trained SFD discriminator (see module docstring).

    Args:
        disc (SFDDiscriminator): trained discriminator (put in eval mode here).
        tile (int): crop size, the training patch size. Default: 256.
        stride (int | None): tile step; None = tile (non-overlapping except the border-aligned last
            row/column). Smaller values average over overlapping crops.
        alpha (float): weight of q_feat in Q. Default: 0.5.
        batch_size (int): crops per forward; bounds memory however large the image. Default: 16.
        device (str | torch.device | None): None = CUDA if available, else CPU.
        bf16 (bool): bfloat16 autocast for the forward (scores are computed in float32). Default: False.
    """

    def __init__(
        self,
        disc: SFDDiscriminator,
        tile: int = DEFAULT_TILE,
        stride: int | None = None,
        alpha: float = 0.5,
        batch_size: int = 16,
        device: str | torch.device | None = None,
        bf16: bool = False,
    ) -> None:
        if tile < disc.backbone.stride:
            raise ValueError(f"tile={tile} is smaller than the CLIP stride {disc.backbone.stride}")
        if stride is not None and not 0 < stride <= tile:
            raise ValueError(f"stride must be in (0, tile={tile}], got {stride}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device if device else ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and not torch.cuda.is_available():  # as inference_sr / evaluate_sr
            warnings.warn(f"{device} requested but CUDA is not available: scoring on CPU", stacklevel=2)
            self.device = torch.device("cpu")
        self.disc = disc.to(self.device).eval()
        self.tile, self.stride, self.alpha, self.batch_size, self.bf16 = tile, stride, alpha, batch_size, bf16
        self.config = dict(disc.config)
        self.text_features = None
        if disc.use_text:  # constant in eval mode: one text-tower pass per scorer, not per batch
            with torch.inference_mode():
                self.text_features = disc.text_features().float()

    @classmethod
    def from_checkpoint(
        cls,
        path: str,
        clip_pretrained: str | None = None,
        device: str | torch.device | None = None,
        tile: int | None = None,
        stride: int | None = None,
        alpha: float = 0.5,
        batch_size: int = 16,
        bf16: bool = False,
        clip_cache_dir: str | None = None,
        allow_random_clip: bool = False,
    ) -> SFDIQA:
        """Load ``net_d_<iter>.pth`` of an SFD run. ``clip_pretrained`` overrides the recorded CLIP
        weights (a local file of the same CLIP); ``tile`` None = the recorded training patch size if the
        checkpoint has one (``train_patch_size``), else 256."""
        config, state = load_sfd_checkpoint(path)
        disc = build_discriminator(config, state, clip_pretrained, clip_cache_dir, allow_random_clip, source=path)
        tile = tile or int(config.get("train_patch_size") or DEFAULT_TILE)
        scorer = cls(disc, tile, stride, alpha, batch_size, device, bf16)
        scorer.checkpoint = os.path.abspath(path)
        return scorer

    def provenance(self) -> dict:
        """What produced these scores: the discriminator checkpoint (path, sha256), the CLIP weights
        (model, file, sha256, random-calibrated or not) and the scoring settings."""
        path = getattr(self, "checkpoint", None)
        cfg = self.config
        return {
            "checkpoint": path,
            "checkpoint_sha256": file_sha256(path) if path and os.path.isfile(path) else None,
            "clip_model": cfg.get("clip_model"),
            "clip_pretrained": cfg.get("clip_pretrained"),
            "clip_weights_file": cfg.get("clip_weights_file"),
            "clip_weights_sha256": cfg.get("clip_weights_sha256"),
            "clip_weights_random_calibrated": cfg.get("clip_weights_random_calibrated", False),
            "random_clip": bool(self.disc.backbone.random_weights),
            "tile": self.tile,
            "stride": self.stride or self.tile,
            "alpha": self.alpha,
            "train_patch_size": cfg.get("train_patch_size"),
        }

    def _autocast(self):
        if not self.bf16:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    @torch.inference_mode()
    def score_crops(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, h, w) in [0, 1] -> (q_feat (B,), q_text (B,)) float32 on CPU, NaN where a head is off.

        Feat-D positions that only see the padding FrozenCLIP adds (sizes not divisible by the
        stride) are left out of the mean.
        """
        b, _, h, w = crops.shape
        x = crops.to(self.device, non_blocking=True)
        disc = self.disc
        with self._autocast():
            feats = disc.extract(x)
            feat_logits = disc.feat_disc(feats.middle) if disc.use_feat else []
            text_logit = disc.text_logit(feats.embedding, self.text_features) if disc.use_text else None
        nan = torch.full((b,), float("nan"), device=x.device)
        q_feat = q_text = nan
        if feat_logits:
            h, w = disc.backbone.input_shape(h, w)  # the size CLIP saw them at (clip_input_size)
            per_layer = [
                torch.sigmoid(m[..., : math.ceil(h / s), : math.ceil(w / s)].float()).mean(dim=(1, 2, 3))
                for m, s in zip(feat_logits, disc.backbone.feat_strides)
            ]
            q_feat = torch.stack(per_layer).mean(0)
        if text_logit is not None:
            q_text = torch.sigmoid(text_logit.float())
        q_feat, q_text = torch.stack([q_feat, q_text]).cpu()  # one read-back per batch
        return q_feat, q_text

    def crop_layout(self, h: int, w: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
        """For an (h, w) image: (size it is scored at, list of crop (top, left) offsets)."""
        return crop_layout(h, w, self.tile, self.stride)

    def score(self, img, name: str | None = None) -> IQAScore:
        """Score one image.

        img: numpy (H, W[, C]) RGB(A)/gray uint8, uint16 or float [0, 1] (see :func:`to_float_rgb`), or
        a torch tensor (3, H, W) / (1, 3, H, W) float in [0, 1]. Crops are converted to float one batch
        (``batch_size`` crops) at a time, so a huge uint8 image never exists as a float copy. An image
        with a side shorter than the tile is enlarged first, with a :class:`SmallImageWarning` naming
        ``name`` (e.g. the file) and both sizes.
        """
        if isinstance(img, torch.Tensor):
            h, w = img.shape[-2:]
        else:
            h, w = np.asarray(img).shape[:2]
        (hh, ww), _ = self.crop_layout(h, w)
        if (hh, ww) != (h, w):  # crop_batches enlarges it: say so, once per image
            warnings.warn(
                f"SFD-IQA: {name or 'image'} is {w}x{h}, smaller than the {self.tile}-pixel tile: scored after "
                f"bicubic enlargement to {ww}x{hh}",
                SmallImageWarning,
                stacklevel=2,
            )
        feats, texts = [], []
        for crops in crop_batches(img, self.tile, self.stride, self.batch_size):
            qf, qt = self.score_crops(crops)
            feats.append(qf)
            texts.append(qt)
        q_feat, q_text = float(torch.cat(feats).mean()), float(torch.cat(texts).mean())
        return IQAScore(self.combine(q_feat, q_text), q_feat, q_text, sum(len(f) for f in feats))

    def combine(self, q_feat: float, q_text: float) -> float:
        """Q = alpha * q_feat + (1 - alpha) * q_text; with one head off, Q is the other component."""
        if math.isnan(q_feat):
            return q_text
        if math.isnan(q_text):
            return q_feat
        return self.alpha * q_feat + (1.0 - self.alpha) * q_text


_CACHE_SIZE = 4
_scorers: OrderedDict[tuple, SFDIQA] = OrderedDict()
COMPONENTS = ("q", "q_feat", "q_text")


def get_scorer(checkpoint: str, **options) -> SFDIQA:
    """A cached :class:`SFDIQA` for ``checkpoint`` and ``SFDIQA.from_checkpoint`` options; a checkpoint
    rewritten on disk (new mtime) is loaded again. Shared by the BasicSR and traiNNer metric entries."""
    if not checkpoint:
        raise ValueError("calculate_sfd_iqa: set `checkpoint:` to an SFD discriminator file (net_d_<iter>.pth)")
    path = os.path.abspath(os.path.expanduser(checkpoint))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"calculate_sfd_iqa: checkpoint {checkpoint!r} does not exist")
    key = (path, os.stat(path).st_mtime_ns, tuple(sorted((k, str(v)) for k, v in options.items())))
    if key in _scorers:
        _scorers.move_to_end(key)
        return _scorers[key]
    scorer = SFDIQA.from_checkpoint(path, **options)
    _scorers[key] = scorer
    while len(_scorers) > _CACHE_SIZE:
        _scorers.popitem(last=False)
    return scorer


def metric_image(img, input_order: str = "HWC", crop_border: int = 0, bgr: bool = False) -> np.ndarray:
    """A validation image as a metric entry receives it -> (H, W, C) RGB array for :meth:`SFDIQA.score`.

    ``input_order`` 'HWC' or 'CHW'; ``crop_border`` pixels are cut from each edge; ``bgr`` swaps the
    channel order (BasicSR passes BGR, traiNNer RGB; an alpha channel is dropped)."""
    if input_order not in ("HWC", "CHW"):
        raise ValueError(f"calculate_sfd_iqa: input_order must be 'HWC' or 'CHW', got {input_order!r}")
    img = np.asarray(img)
    if input_order == "CHW":
        img = img.transpose(1, 2, 0)
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
    if bgr and img.ndim == 3 and img.shape[2] >= 3:
        img = img[..., 2::-1]
    return img


def check_component(component: str) -> str:
    if component not in COMPONENTS:
        raise ValueError(f"calculate_sfd_iqa: component must be one of {COMPONENTS}, got {component!r}")
    return component


def crop_layout(h: int, w: int, tile: int, stride: int | None = None) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """For an (h, w) image: (size it is scored at, list of ``tile``² crop (top, left) offsets)."""
    hh, ww = upsized_shape(h, w, tile)
    tops, lefts = tile_starts(hh, tile, stride), tile_starts(ww, tile, stride)
    return (hh, ww), [(t, left) for t in tops for left in lefts]


def crop_batches(img, tile: int, stride: int | None = None, batch_size: int = 16) -> Iterator[torch.Tensor]:
    """The crops an image is scored on, ``batch_size`` at a time, each batch (b, 3, tile, tile) in [0, 1].

    img: numpy (H, W[, C]) RGB(A)/gray uint8, uint16 or float [0, 1] (see :func:`to_float_rgb`), or a
    torch tensor (3, H, W) / (1, 3, H, W) float in [0, 1]. Crops are converted to float one batch at a
    time, so a huge uint8 image never exists as a float copy; an image smaller than a tile is resized up.
    """
    if isinstance(img, torch.Tensor):
        if img.dim() == 4 and img.shape[0] == 1:
            img = img[0]
        if img.dim() != 3 or img.shape[0] != 3:
            raise ValueError(f"SFD-IQA: expected a (3, H, W) tensor, got {tuple(img.shape)}")
        h, w = img.shape[-2:]
    else:
        img = np.asarray(img)
        h, w = img.shape[:2]
    (hh, ww), boxes = crop_layout(h, w, tile, stride)
    if (hh, ww) != (h, w):  # small image: resize up once (it is small, a float copy is cheap)
        full = to_float_rgb(img)[None]
        img = F.interpolate(full, size=(hh, ww), mode="bicubic", align_corners=False).clamp(0, 1)[0]
    for i in range(0, len(boxes), batch_size):
        yield torch.stack([to_float_rgb(_region(img, top, left, tile)) for top, left in boxes[i : i + batch_size]])


def _region(img, top: int, left: int, size: int):
    if isinstance(img, torch.Tensor):
        return img[:, top : top + size, left : left + size]
    return img[top : top + size, left : left + size]
