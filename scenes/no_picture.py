"""Questions about a picture when no picture has been shared, and the reply that asks for one.

    NO_PICTURE_REPLY                         # what the assistant says instead of making up an answer
    asks_for_picture("Please attach one.")   # False: it must name a picture and ask for it
    asks_for_picture(NO_PICTURE_REPLY)       # True

A user who types "What colour is the circle?" before attaching anything should be told to attach a picture,
not given a colour: an answer then is a guess about a picture nobody has seen. Training chats teach the reply
(data_gen.scene_chats, kind `no_image`); the evaluation asks questions in held-out wordings with no picture and
reads each reply with `asks_for_picture`, which accepts any wording that names a picture and asks for it, so a
model that words the request its own way is not marked wrong.
"""
from __future__ import annotations

import re

NO_PICTURE_REPLY = ("I don't see a picture in our chat yet. Attach one and ask again, and I'll tell you what is "
                    "in it. I can also draw a scene for you if you describe it.")

_PICTURE = re.compile(r"\b(picture|image|photo|photograph|scene)s?\b", re.IGNORECASE)
_ASKING = re.compile(r"\b(attach|upload|send|share|show me|add|provide|give me)\b", re.IGNORECASE)


def asks_for_picture(reply: str) -> bool:
    """Whether `reply` names a picture and asks the user to share one (in any wording)."""
    return bool(_PICTURE.search(reply)) and bool(_ASKING.search(reply))
