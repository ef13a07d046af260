"""Held-out means held out: every data set made from scikit-image's photos keeps the photos of one
scene on one side of its train/test split (motorcycle_left/right are one stereo pair; cat == chelsea)."""

from __future__ import annotations

import inspect

import pytest

from sfd_lab.bakeoff import contestants as bakeoff
from sfd_lab.bakeoff import run as bakeoff_program
from sfd_lab.checks import learning_check
from sfd_lab.checks.quality_clip import QualityCLIPSettings
from sfd_tools.csud import synthetic_rain
from sfd_tools.demo import data as demo_data
from sfd_tools.iqa import ranking
from sfd_utils import photos
from sfd_utils.photos import HELDOUT_PHOTOS, SCENE, TRAIN_GRAY_PHOTOS, TRAIN_PHOTOS, scene_overlap

SPLITS = {
    "SR demo / learning check / ranking report": (TRAIN_PHOTOS + TRAIN_GRAY_PHOTOS, HELDOUT_PHOTOS),
    "CSUD synthetic rain": (synthetic_rain.TRAIN_PHOTOS, synthetic_rain.TEST_PHOTOS),
    "bake-off generators / evaluation": (bakeoff.GENERATOR_TRAIN_PHOTOS, bakeoff.EVAL_PHOTOS),
    "bake-off contestants' quality CLIP / evaluation": (QualityCLIPSettings().photos, bakeoff.EVAL_PHOTOS),
    "bake-off judge CLIP / evaluation": (bakeoff_program.judge_settings().photos, bakeoff.EVAL_PHOTOS),
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


def test_bakeoff_judge_is_another_clip_on_other_photos_and_never_sees_the_evaluation():
    """The bake-off's judge: the quality CLIP's trainer with another seed and another photo set than the
    contestants' CLIP; its photos, the contestants' CLIP's and the generators' exclude every evaluation scene."""
    judge, contestants_clip = bakeoff_program.judge_settings(), QualityCLIPSettings()
    assert judge.seed != contestants_clip.seed and set(judge.photos) != set(contestants_clip.photos)
    assert judge.key() != contestants_clip.key()  # trained and cached separately
    assert bakeoff.GENERATOR_TRAIN_PHOTOS is photos.TRAIN_PHOTOS and bakeoff.EVAL_PHOTOS is photos.HELDOUT_PHOTOS
    for used in (judge.photos, contestants_clip.photos, bakeoff.GENERATOR_TRAIN_PHOTOS):
        assert not set(used) & set(bakeoff.EVAL_PHOTOS)
