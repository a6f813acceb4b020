"""A stand-in for a model: answers with given replies and keeps what it was shown."""

from __future__ import annotations

import numpy as np

from panoseek.agents.vlm import VLMPolicy


class ScriptedPolicy(VLMPolicy):
    """A policy that answers with given replies and keeps the chats it was asked about."""

    def __init__(self, replies):
        self.replies, self.asked = list(replies), []

    def generate(self, chats, seed=None):
        messages, images = chats[0].messages()
        self.asked.append((messages, [np.asarray(image) for image in images]))
        return [self.replies[len(self.asked) - 1]]
