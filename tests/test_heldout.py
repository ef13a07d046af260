"""Held-out means held out: every data set made from scikit-image's photos keeps the photos of one
scene on one side of its train/test split (motorcycle_left/right are one stereo pair; cat == chelsea)."""

from __future__ import annotations

import inspect

import pytest

from sfd_lab.checks import learning_check
from sfd_lab.checks.quality_clip import QualityCLIPSettings
from sfd_lab.photos import fallback_set
from sfd_tools.csud import synthetic_rain
from sfd_tools.demo import data as demo_data
from sfd_tools.iqa import ranking
from sfd_utils import photos
from sfd_utils.photos import HELDOUT_PHOTOS, SCENE, TRAIN_GRAY_PHOTOS, TRAIN_PHOTOS, scene_overlap

FALLBACK = fallback_set("test")  # the bake-off's photos where the prepared ones are absent (and for --quick)
FALLBACK_TRAIN = tuple(p.name for p in FALLBACK.train + FALLBACK.val)
FALLBACK_TEST = tuple(p.name for p in FALLBACK.test)
SPLITS = {
    "SR demo / learning check / ranking report": (TRAIN_PHOTOS + TRAIN_GRAY_PHOTOS, HELDOUT_PHOTOS),
    "CSUD synthetic rain": (synthetic_rain.TRAIN_PHOTOS, synthetic_rain.TEST_PHOTOS),
    "bake-off generators and lr choice / evaluation (fallback photos)": (FALLBACK_TRAIN, FALLBACK_TEST),
    "bake-off contestants' quality CLIP / evaluation (fallback photos)": (QualityCLIPSettings().photos, FALLBACK_TEST),
}


@pytest.mark.parametrize("split", SPLITS)
def test_no_scene_on_both_sides(split):
    train, heldout = SPLITS[split]
    assert scene_overlap(train, heldout) == set(), f"{split}: held-out photos share a scene with training photos"


def test_every_photo_used_has_a_known_scene():
    used = {
        *TRAIN_PHOTOS,
        *TRAIN_GRAY_PHOTOS,
        *HELDOUT_PHOTOS,
        *synthetic_rain.TRAIN_PHOTOS,
        *synthetic_rain.TEST_PHOTOS,
    }
    assert used <= set(SCENE), f"photos without a scene entry: {sorted(used - set(SCENE))}"


def test_overlap_check_catches_the_stereo_pair_and_the_cat():
    assert scene_overlap(["motorcycle_left"], ["motorcycle_right"]) == {"motorcycle"}
    assert scene_overlap(["cat"], ["chelsea"]) == {"cat"}
    with pytest.raises(KeyError):
        scene_overlap(["an_unknown_photo"], ["chelsea"])


def test_programs_draw_their_splits_from_the_checked_lists():
    """The learning check, ranking report and demo data read the lists checked above (not their own)."""
    for module in (learning_check, ranking, demo_data):
        assert module.TRAIN_PHOTOS is photos.TRAIN_PHOTOS and module.HELDOUT_PHOTOS is photos.HELDOUT_PHOTOS
    assert inspect.signature(ranking.run_ranking_report).parameters["photos"].default is photos.HELDOUT_PHOTOS
