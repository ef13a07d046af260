"""A quality-aware tiny CLIP made here: the closest honest stand-in for real CLIP weights.

Real CLIP weights cannot be had on this machine, and a randomly initialised CLIP maps a sharp and a
blurred crop to nearly the same final embedding, so TG-D and SFD-IQA cannot show what the paper
claims. This module trains a tiny open_clip model (``quality-tiny-rn``, sfd_arch/clip_configs)
contrastively on CPU in a few minutes:

- images: random 64² crops of the *training* photos: scikit-image's (sfd_utils.photos TRAIN_PHOTOS
  and the gray TRAIN_GRAY_PHOTOS), or the train split of the lab's real photographs (sfd_lab.photos,
  Debian's wallpaper photos: :func:`photo_set_settings`); each batch half sharp and half the same
  crops degraded by one of bicubic down-up, Gaussian blur, Gaussian noise or JPEG at a random
  strength (every degradation a web-trained CLIP has seen; a degradation absent from the captions
  does not transfer);
- captions: plain words for the condition (sharp / clean / high quality ... vs blurry / noisy /
  pixelated / compressed / low quality ...), several templates, the scene named half the time;
- loss: multi-positive contrastive: a caption is a positive for every crop of the batch it fits
  (same quality side, a degradation word only for crops with that degradation, a scene word only
  for crops of that scene), soft cross-entropy in both directions at CLIP's learnable temperature.

Validation and held-out photos (the photo set's val/test splits, scikit-image's HELDOUT_PHOTOS) are
never read while training; the zero-shot evaluation (CLIP-IQA style fixed prompts,
:mod:`sfd_metric.zero_shot_iqa`) is measured on them. :func:`cached_quality_clip` is the one entry the
bake-off and the design studies use; by default it is the CLIP trained on scikit-image's photos, which
beats the one trained on the photo set's train split zero-shot on the photo set's *validation* crops
(AUC 0.707 vs 0.680 at 64², 0.731 vs 0.687 at 96²; benchmarks/results/quality_clip_photos-2026-12-07.md):
the wallpaper photos are smooth, and 41 % of their 64² crops change by less than one grey level under
the Gaussian blur the captions call "blurry" (6 % of scikit-image's), so those captions are noise.
The result is an ordinary open_clip state_dict file, loaded like a user's real weights with
``clip_model: quality-tiny-rn, clip_pretrained: <file>``, plus a JSON sidecar of training facts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from sfd_utils.photos import HELDOUT_PHOTOS, SCENE, TRAIN_GRAY_PHOTOS, TRAIN_PHOTOS, load_photo, scene_overlap

QUALITY_CLIP_MODEL = "quality-tiny-rn"
SCIKIT_IMAGE = "scikit-image"  # photo sources of the training photos: scikit-image ships them,
DEBIAN = "debian"  # or the photo set (sfd_lab.photos) prepared from Debian's packages
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_FILE = os.path.join(ROOT, "experiments", "pretrained_models", "quality_clip_tiny.pt")
CACHE_DIR = os.path.join(ROOT, "experiments", "cache", "quality_clip")
TRAINER_VERSION = 2  # part of the cache key: bump when training changes what a setting produces
DEGRADATION_KINDS = ("downup", "blur", "noise", "jpeg")
# strength range per degradation (uniform); the zero-shot check uses EVAL_STRENGTH
STRENGTH_RANGE = {"downup": (1.5, 4.0), "blur": (0.7, 3.0), "noise": (5.0, 40.0), "jpeg": (10.0, 60.0)}
EVAL_STRENGTH = {"downup": 3.0, "blur": 1.5, "noise": 20.0, "jpeg": 30.0}

# Caption vocabulary: words for sharp crops, and for degraded ones the kinds each word fits.
SHARP_WORDS = ("sharp", "clean", "high quality", "crisp", "clear", "detailed", "high resolution", "good quality")
DEGRADED_WORDS = {
    "low quality": set(DEGRADATION_KINDS),
    "bad quality": set(DEGRADATION_KINDS),
    "poor quality": set(DEGRADATION_KINDS),
    "degraded": set(DEGRADATION_KINDS),
    "blurry": {"blur", "downup"},
    "out of focus": {"blur"},
    "smeared": {"blur"},
    "pixelated": {"downup"},
    "low resolution": {"downup"},
    "upscaled": {"downup"},
    "noisy": {"noise"},
    "grainy": {"noise"},
    "speckled": {"noise"},
    "compressed": {"jpeg"},
    "blocky": {"jpeg"},
    "jpeg compressed": {"jpeg"},
}
TEMPLATES = ("a {q} photo.", "a {q} image.", "a {q} picture.", "this photo is {q}.", "a photo that looks {q}.")
SCENE_TEMPLATES = ("a {q} photo of the {s}.", "a {q} image of a {s}.", "a photo of the {s}, {q}.")


@dataclasses.dataclass(frozen=True)
class QualityCLIPSettings:
    """Everything that decides the trained weights (the cache key is a hash of these).

    steps/batch: optimiser steps and images per step (half sharp, half degraded); crop: square crop
    side in pixels; lr: AdamW peak learning rate (warm-up then cosine); photos: training photos, by
    name in ``photo_source``: "scikit-image" (sfd_utils.photos) or "debian:<first 12 hex digits of the
    photo manifest's SHA-256>" (the train split of sfd_lab.photos; a stale manifest is refused).
    """

    clip_model: str = QUALITY_CLIP_MODEL
    steps: int = 300
    batch: int = 128
    crop: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 50
    scene_prob: float = 0.5
    photos: tuple[str, ...] = TRAIN_PHOTOS + TRAIN_GRAY_PHOTOS
    seed: int = 0
    photo_source: str = SCIKIT_IMAGE

    def key(self) -> str:
        """Short hash of the settings and the trainer version (``photo_source`` counts only when it is not
        scikit-image, so the keys of files trained before the photo set existed stay valid)."""
        fields = dataclasses.asdict(self)
        if self.photo_source == SCIKIT_IMAGE:
            del fields["photo_source"]
        blob = json.dumps({"version": TRAINER_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def photo_set_settings(photos=None) -> QualityCLIPSettings:
    """The quality CLIP trained on the train split of the lab's photographs where they are prepared
    (``photos``: a :class:`sfd_lab.photos.PhotoSet`; None: :func:`sfd_lab.photos.photo_set`), else on
    scikit-image's training photos (the fallback, e.g. in CI). Not the default (see the module doc)."""
    if photos is None:
        from sfd_lab.photos import photo_set

        photos = photo_set()
    if photos.fallback or not photos.manifest_sha256:
        return QualityCLIPSettings()
    names = tuple(p.name for p in photos.train)
    return QualityCLIPSettings(photos=names, photo_source=f"{DEBIAN}:{photos.manifest_sha256[:12]}")


def training_photos(s: QualityCLIPSettings) -> list[tuple[str, str]]:
    """(name, scene) of the settings' training photos; refuses a photo of a held-out scene, and for the
    photo set a name outside its train split or a manifest other than the one the settings name."""
    if s.photo_source == SCIKIT_IMAGE:
        leaked = sorted(set(s.photos) & set(HELDOUT_PHOTOS)) or sorted(scene_overlap(s.photos, HELDOUT_PHOTOS))
        if leaked:
            raise ValueError(f"photos: {leaked} belong to the held-out scenes; the quality CLIP never trains on them")
        return [(n, SCENE[n]) for n in s.photos]
    ps = _debian_set(s)
    train = {p.name: p for p in ps.train}
    outside = sorted(set(s.photos) - set(train))
    if outside:
        raise ValueError(f"photos: {outside} are not in the photo set's train split (the quality CLIP's only photos)")
    return [(n, train[n].scene) for n in s.photos]


def _debian_set(s: QualityCLIPSettings):
    """The prepared photo set the settings name (``debian:<sha>``); a clear error if it is not here."""
    from sfd_lab.photos import PhotosNotPrepared, photo_set

    kind, _, sha = s.photo_source.partition(":")
    if kind != DEBIAN or not sha:
        raise ValueError(f"photo_source: {s.photo_source!r} is neither {SCIKIT_IMAGE!r} nor '{DEBIAN}:<manifest sha>'")
    ps = photo_set(allow_fallback=False)
    if not (ps.manifest_sha256 or "").startswith(sha):
        raise PhotosNotPrepared(
            f"photo_source {s.photo_source}: the prepared photos come from manifest {str(ps.manifest_sha256)[:12]}"
        )
    return ps


def _load(name: str, s: QualityCLIPSettings):
    """(H, W, 3) uint8 RGB of a training photo of the settings."""
    if s.photo_source == SCIKIT_IMAGE:
        return load_photo(name)
    return next(p for p in _debian_set(s).train if p.name == name).rgb()


# -- degradations (float (3, H, W) in [0, 1] in, same out, quantised to 8 bits) ---------------------------
def degrade_crop(img: torch.Tensor, kind: str, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """One (3, H, W) crop in [0, 1] degraded by ``kind`` at ``strength``: down-up factor, blur sigma
    (px), noise sigma (/255) or JPEG quality. Output is rounded to 8-bit levels like a saved image."""
    h, w = img.shape[-2:]
    x = img[None]
    if kind == "downup":
        small = (max(1, round(h / strength)), max(1, round(w / strength)))
        x = F.interpolate(x, size=small, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)
    elif kind == "blur":
        radius = max(1, math.ceil(3 * strength))
        t = torch.arange(-radius, radius + 1, dtype=img.dtype)
        k = torch.exp(-0.5 * (t / strength) ** 2)
        k = k / k.sum()
        x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
        x = F.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    elif kind == "noise":
        noise = torch.from_numpy(rng.normal(0.0, strength / 255.0, size=tuple(x.shape)).astype(np.float32))
        x = x + noise
    elif kind == "jpeg":
        import cv2

        arr = (img.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", arr[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(round(strength))])
        if not ok:
            raise RuntimeError("cv2.imencode failed to write a JPEG")
        arr = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float() / 255.0
    else:
        raise ValueError(f"unknown degradation {kind!r}; choose from {DEGRADATION_KINDS}")
    return (x[0].clamp(0, 1) * 255.0).round() / 255.0


# -- data ---------------------------------------------------------------------------------------------------
def _photo_pool(photos, crop: int) -> list[tuple[str, np.ndarray]]:
    """(scene, (H, W, 3) uint8) for every training photo at full size and at 1/2 (area); ``photos``:
    settings (their training photos) or scikit-image photo names."""
    import cv2

    if not isinstance(photos, QualityCLIPSettings):
        photos = QualityCLIPSettings(photos=tuple(photos))
    pool = []
    for name, scene in training_photos(photos):
        img = _load(name, photos)
        pool.append((scene, img))
        half = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        if min(half.shape[:2]) >= crop:
            pool.append((scene, half))
    return pool


def _random_crops(pool, n: int, crop: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[str]]:
    """(n, 3, crop, crop) float [0, 1] random crops (random flips) and their photos' scenes."""
    out, names = [], []
    for i in rng.integers(0, len(pool), size=n):
        name, img = pool[i]
        top = rng.integers(0, img.shape[0] - crop + 1)
        left = rng.integers(0, img.shape[1] - crop + 1)
        c = img[top : top + crop, left : left + crop]
        if rng.random() < 0.5:
            c = c[:, ::-1]
        out.append(np.ascontiguousarray(c))
        names.append(name)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0, names


def _caption(kind: str | None, scene: str, scene_prob: float, rng: np.random.Generator) -> tuple[str, str, bool]:
    """A caption for a crop (kind None = sharp) -> (text, quality word, names the scene?)."""
    if kind is None:
        word = SHARP_WORDS[rng.integers(len(SHARP_WORDS))]
    else:
        fits = [w for w, kinds in DEGRADED_WORDS.items() if kind in kinds]
        word = fits[rng.integers(len(fits))]
    if rng.random() < scene_prob:
        return SCENE_TEMPLATES[rng.integers(len(SCENE_TEMPLATES))].format(q=word, s=scene), word, True
    return TEMPLATES[rng.integers(len(TEMPLATES))].format(q=word), word, False


def caption_fits(word: str, with_scene: str | None, kind: str | None, scene: str) -> bool:
    """Whether a caption (quality ``word``, optional scene) describes a crop (``kind`` None = sharp)."""
    if with_scene is not None and with_scene != scene:
        return False
    if kind is None:
        return word in SHARP_WORDS
    return kind in DEGRADED_WORDS.get(word, ())


def make_batch(pool, s: QualityCLIPSettings, rng: np.random.Generator):
    """One training batch -> (images (B, 3, c, c), captions [B], targets (B, B) with targets[i, j] = 1
    when caption j fits image i), half sharp crops and the same crops degraded."""
    half = s.batch // 2
    sharp, scenes = _random_crops(pool, half, s.crop, rng)
    kinds = [DEGRADATION_KINDS[k] for k in rng.integers(0, len(DEGRADATION_KINDS), size=half)]
    degraded = torch.stack(
        [degrade_crop(sharp[i], k, float(rng.uniform(*STRENGTH_RANGE[k])), rng) for i, k in enumerate(kinds)]
    )
    images = torch.cat([sharp, degraded])
    img_kinds: list[str | None] = [None] * half + kinds
    scenes = scenes * 2
    captions, words, caption_scenes = [], [], []
    for kind, scene in zip(img_kinds, scenes):
        text, word, named = _caption(kind, scene, s.scene_prob, rng)
        captions.append(text)
        words.append(word)
        caption_scenes.append(scene if named else None)
    targets = torch.tensor(
        [
            [float(caption_fits(w, cs, kind, scene)) for w, cs in zip(words, caption_scenes)]
            for kind, scene in zip(img_kinds, scenes)
        ]
    )
    return images, captions, targets


def multi_positive_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, targets: torch.Tensor):
    """Soft cross-entropy both ways: img (B, D), txt (B, D) L2-normalised, targets (B, B) in {0, 1}
    with a positive on the diagonal; each row (image->text) / column (text->image) target sums to 1."""
    logits = scale * img @ txt.T
    i2t = -(targets / targets.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    t2i = -(targets.T / targets.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean()
    return (i2t + t2i) / 2


def encode_text_short(model, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's ``encode_text`` on the tokens up to the longest caption's end-of-text token:
    (N, context_length) ids -> (N, D) L2-normalised. Identical to the full context (causal attention,
    pooling at end-of-text) at a fraction of the cost for short captions."""
    length = int((tokens != 0).sum(1).max())
    tokens = tokens[:, :length]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
    x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
    return F.normalize(x, dim=-1)


# -- training -----------------------------------------------------------------------------------------------
def register_quality_clip() -> None:
    """Register the shipped tiny open_clip configs (``quality-tiny-rn`` among them) by name."""
    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS, register_clip_config

    register_clip_config(TINY_CLIP_CONFIGS)


def train_quality_clip(
    out_file: str = DEFAULT_FILE,
    settings: QualityCLIPSettings | None = None,
    log_every: int = 50,
    evaluate: bool = True,
) -> dict:
    """Train the quality-aware tiny CLIP; write ``out_file`` (open_clip state_dict) and its sidecar
    ``<out_file stem>.json``; return the sidecar dict (training facts, zero-shot results)."""
    import open_clip

    s = settings or QualityCLIPSettings()
    training_photos(s)  # refuses held-out photos before anything is built
    register_quality_clip()
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    model = open_clip.create_model(s.clip_model, pretrained=None)
    model.train()
    tokenizer = open_clip.get_tokenizer(s.clip_model)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": s.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=s.lr
    )
    pool = _photo_pool(s, s.crop)
    # CLIP's input normalisation, exactly as FrozenCLIP applies it when the weights are used later
    mean = torch.tensor(model.visual.preprocess_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.visual.preprocess_cfg["std"]).view(1, 3, 1, 1)
    start = time.perf_counter()
    curve = []
    for step in range(1, s.steps + 1):
        lr = s.lr * (step / s.warmup if step <= s.warmup else 0.5 * (1 + math.cos(math.pi * step / s.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        images, captions, targets = make_batch(pool, s, rng)
        img = F.normalize(model.encode_image((images - mean) / std), dim=-1)
        unique = sorted(set(captions))
        txt = encode_text_short(model, tokenizer(unique))[[unique.index(c) for c in captions]]
        loss = multi_positive_loss(img, txt, model.logit_scale.exp(), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % log_every == 0 or step == s.steps:
            curve.append({"step": step, "loss": round(loss.item(), 4)})
            print(f"step {step}/{s.steps} loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start
    model.eval()
    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    tmp = f"{out_file}.tmp{os.getpid()}"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, out_file)  # atomic: a reader never sees half a file
    facts = {
        "file": os.path.abspath(out_file),
        "clip_model": s.clip_model,
        "settings": dataclasses.asdict(s),
        "settings_key": s.key(),
        "trainer_version": TRAINER_VERSION,
        "train_photos": list(s.photos),
        "photo_source": s.photo_source,
        "heldout_photos_never_used": list(HELDOUT_PHOTOS) if s.photo_source == SCIKIT_IMAGE else "val and test splits",
        "degradations": {k: {"range": STRENGTH_RANGE[k]} for k in DEGRADATION_KINDS},
        "seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "loss_curve": curve,
    }
    if evaluate:
        facts["zero_shot_heldout"] = {
            str(size): evaluate_zero_shot(out_file, s.clip_model, crop=size) for size in (s.crop, 96)
        }
    with open(sidecar_path(out_file), "w", encoding="utf-8") as f:
        json.dump(facts, f, indent=2)
    return facts


def sidecar_path(weights_file: str) -> str:
    """The JSON of training facts next to a weights file (``x.pt`` -> ``x.json``)."""
    return os.path.splitext(weights_file)[0] + ".json"


# -- zero-shot evaluation --------------------------------------------------------------------------------------
def heldout_eval_set(crop: int = 64, photos=HELDOUT_PHOTOS, seed: int = 0, max_per_photo: int | None = None):
    """Non-overlapping ``crop``² crops of held-out photos (scikit-image names, or objects with ``rgb()``
    such as :class:`sfd_lab.photos.Photo`), at most ``max_per_photo`` each (evenly spread), sharp and
    degraded by every kind at EVAL_STRENGTH -> (sharp (N, 3, c, c), {kind: degraded (N, 3, c, c)})."""
    from sfd_utils.photos import tiles

    rng = np.random.default_rng(seed)
    crops = []
    for p in photos:
        found = tiles(load_photo(p) if isinstance(p, str) else p.rgb(), crop, crop)
        if max_per_photo and len(found) > max_per_photo:
            found = [found[i] for i in np.linspace(0, len(found) - 1, max_per_photo).round().astype(int)]
        crops += found
    sharp = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
    degraded = {k: torch.stack([degrade_crop(c, k, EVAL_STRENGTH[k], rng) for c in sharp]) for k in DEGRADATION_KINDS}
    return sharp, degraded


def evaluate_zero_shot(
    clip_pretrained: str | None,
    clip_model: str = QUALITY_CLIP_MODEL,
    crop: int = 64,
    calibrate: bool = True,
    photos=HELDOUT_PHOTOS,
    max_per_photo: int | None = None,
) -> dict:
    """Zero-shot quality (fixed prompts, :class:`ZeroShotQuality`) of a CLIP loaded the way SFD loads
    it (FrozenCLIP, ``clip_pretrained`` a file or None = random weights with BatchNorm calibrated on
    training crops) on crops of held-out ``photos`` (see :func:`heldout_eval_set`): sharp vs each degradation.

    Returns {auc, accuracy (balanced, threshold p = 0.5), per-kind auc/accuracy, n_crops, crop}.
    """
    from sfd_arch.clip_backbone import FrozenCLIP, calibrate_random_clip
    from sfd_metric.zero_shot_iqa import ZeroShotQuality, auc

    register_quality_clip()
    clip = FrozenCLIP(clip_model, clip_pretrained)
    if clip_pretrained is None and calibrate:  # the random stand-in the learning check uses
        rng = np.random.default_rng(0)
        calib, _ = _random_crops(_photo_pool(TRAIN_PHOTOS, crop), 64, crop, rng)
        calibrate_random_clip(clip.clip, calib)
    scorer = ZeroShotQuality(clip, tile=crop)
    sharp, degraded = heldout_eval_set(crop, photos, max_per_photo=max_per_photo)

    def score(crops: torch.Tensor) -> np.ndarray:
        return torch.cat([scorer.score_crops(b) for b in crops.split(256)]).numpy()

    p_sharp = score(sharp)
    out = {"crop": crop, "n_crops": len(sharp), "per_kind": {}}
    all_bad = []
    for kind, imgs in degraded.items():
        p_bad = score(imgs)
        all_bad.append(p_bad)
        out["per_kind"][kind] = {
            "auc": auc(p_sharp, p_bad),
            "accuracy": float(((p_sharp > 0.5).mean() + (p_bad < 0.5).mean()) / 2),
        }
    p_bad = np.concatenate(all_bad)
    out["auc"] = auc(p_sharp, p_bad)
    out["accuracy"] = float(((p_sharp > 0.5).mean() + (p_bad < 0.5).mean()) / 2)
    out["mean_p_sharp"], out["mean_p_degraded"] = float(p_sharp.mean()), float(p_bad.mean())
    return out


# -- cached fixture ------------------------------------------------------------------------------------------
def cached_quality_clip(
    settings: QualityCLIPSettings | None = None, cache_dir: str = CACHE_DIR, reuse: tuple[str, ...] = (DEFAULT_FILE,)
) -> str:
    """Path of a quality CLIP trained with ``settings`` (default: scikit-image's training photos, see the
    module doc), trained once and then reused: a file in ``reuse`` (e.g. the one
    scripts/train_quality_clip.py wrote) or in ``cache_dir`` (outside git) whose sidecar records the same
    settings hash; otherwise trained into ``cache_dir``."""
    s = settings or QualityCLIPSettings()
    path = os.path.join(cache_dir, f"{s.clip_model}-{s.key()}.pt")
    for candidate in (path, *reuse):
        side = sidecar_path(candidate)
        if os.path.isfile(candidate) and os.path.isfile(side):
            with open(side, encoding="utf-8") as f:
                if json.load(f).get("settings_key") == s.key():
                    return candidate
    train_quality_clip(path, s, evaluate=False)
    return path
