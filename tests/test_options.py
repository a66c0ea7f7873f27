"""The options: one mapping of names for the command line and the page, and one check
of every request's options."""

import dataclasses
import math

import pytest

from fomm_space import DEFAULTS, LIVE_DEFAULTS, AnimationOptions, InputError
from fomm_space.options import check_options, options_from


def test_options_are_made_from_names_of_the_cli_the_page_or_the_fields():
    made = options_from({"crop_faces": False, "smooth": 0.3, "upscale": None, "source": "photo.png",
                         "find_best_frame": True, "max_frames": 90})
    assert made == dataclasses.replace(DEFAULTS, crop=False, smoothing=0.3, find_best_frame=True, max_frames=90)
    assert options_from({"relative": False}, LIVE_DEFAULTS).smoothing == LIVE_DEFAULTS.smoothing
    assert options_from({"best_frame": None, "batch_size": None}) == DEFAULTS


@pytest.mark.parametrize("change, message", [
    ({"max_seconds": math.nan}, "max_seconds must be a finite number, got nan"),
    ({"crop_scale": math.inf}, "crop_scale must be a finite number"),
    ({"relative": "false"}, "relative must be True or False, got 'false'"),
    ({"upscale": "A" * 10_000}, "upscale must be one of bicubic, lanczos, bilinear, got 'AAAA"),
    ({"max_frames": 0}, "max_frames must be at least 1"),
    ({"batch_size": 2.5}, "batch_size must be a whole number or None"),
    ({"face_detector": None}, "face_detector must be a name"),
])
def test_one_check_refuses_what_a_hostile_client_might_send(change, message):
    with pytest.raises(InputError, match=message) as caught:
        check_options(AnimationOptions(**change))
    assert len(str(caught.value)) < 200
