"""Reading whether a reply asks the user for a picture, in any wording."""
from __future__ import annotations

import pytest

from scenes.no_picture import NO_PICTURE_REPLY, asks_for_picture


@pytest.mark.parametrize("reply", [NO_PICTURE_REPLY, "Please upload an image first.",
                                   "I can't see any photo here. Could you attach it?",
                                   "Share the picture and I will describe it."])
def test_a_request_for_a_picture_in_any_wording_counts(reply):
    assert asks_for_picture(reply)


@pytest.mark.parametrize("reply", ["The circle is yellow.", "No, there is no red square in the picture.",
                                   "There are three shapes in the image.", "Please attach it.",
                                   "The capital of France is Paris."])
def test_an_answer_or_a_request_that_names_no_picture_does_not(reply):
    assert not asks_for_picture(reply)
