"""True zoom for the vlm agent: the closer look is rendered from the panorama, not cut from the view.

With ``VLMAgent(crop=..., zoom=True)`` (``--agent-arg zoom=true`` in a ``panoseek eval --zoom``
run) each turn finds the same boxes as cropping does (:meth:`VLMPolicy.crop_boxes` on the
attention map) but, instead of cutting a box out of the observed view, sends the protocol's
``zoom(yaw, pitch, fov)`` toward it (:func:`zoom_toward`), and the environment renders a
narrower view from the panorama at full resolution. A zoom uses no turn: its view comes back
as the next observation, is attached to the pending chat turn as its closer look (as crops
are, :meth:`EpisodeChat.add_crops`), and only then does the model reply. ``funnel`` sends its
chain of boxes as a chain of zooms (at most ``zooms_per_turn``).

In one ``VLMAgent.act_batch`` call a zooming agent is in one of three states, handled by
:func:`next_zooms`: a new view (its boxes come from one batched map step per policy) -> its
first zoom; a zoom view with zooms still queued -> the next zoom; its last zoom view -> left
for the batch's one ``generate`` call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from PIL import Image

from panoseek.agents.cropping import Box
from panoseek.envs.agent import zoom
from panoseek.envs.geometry import view_pixel_lonlat, view_position, wrap_yaw
from panoseek.envs.protocol import ZOOM, ZOOM_MIN_FOV, format_action, format_reply, zoom_inside_view

WIDEST = 0.999  # the widest zoom's half-width in the image plane, as a share of the view's (it must be narrower)
BISECTIONS = 16  # steps of the search for how far a zoom may move toward its box
MARGIN = 1e-4  # a zoom must fit even this much wider (observed headings are float32; the env's are not)
SHRINK = 0.8  # how a zoom's field of view narrows while it cannot show its box's centre


@dataclass
class ZoomState:
    """One episode's zooms: the run's limits and the zooms of the pending turn."""

    per_turn: int  # zooms allowed between two turns (task_info "zooms_per_turn")
    fov_deg: float  # the views' horizontal field of view
    queued: list[dict[str, Any]] = field(default_factory=list)  # planned for this turn, not sent yet
    sent: dict[str, Any] | None = None  # the zoom whose view the next observation should be


def zoom_toward(box: Box, view_size: tuple[int, int], heading: Sequence[float], fov_deg: float) -> dict[str, Any]:
    """The zoom action that looks at ``box`` (view pixels ``(x0, y0, x1, y1)``, ends exclusive)
    of the view of ``view_size`` seen at ``heading`` (yaw, pitch) with ``fov_deg``.

    Its field of view is the narrowest that covers the box (a zoom view has the view's
    aspect, so the box's larger share of the view's width or height decides; pinhole: the
    share applies to ``tan(fov / 2)``), clamped to the protocol's ``[ZOOM_MIN_FOV, fov_deg)``.
    It looks toward the box centre, or, where that zoom view would reach outside the current
    view (the environment refuses such a zoom), toward the point nearest it from which the
    zoom view still lies inside (found along the way from the view's centre to the box's).
    Where even that point does not show the box centre (near a corner of a view pitched up
    or down, zoom views are tilted in it), the field of view narrows by :data:`SHRINK` until
    it does or reaches ``ZOOM_MIN_FOV``.
    """
    width, height = view_size
    x0, y0, x1, y1 = box
    yaw0, pitch0 = (float(angle) for angle in heading)
    share = min(max((x1 - x0) / width, (y1 - y0) / height), WIDEST)
    fov = max(math.degrees(2 * math.atan(share * math.tan(math.radians(fov_deg) / 2))), ZOOM_MIN_FOV)
    centre = np.array([(width - 1) / 2, (height - 1) / 2])  # pixel-centre coordinates
    target = np.array([(x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5])

    def direction(point: np.ndarray) -> tuple[float, float]:
        if np.array_equal(point, centre):  # the heading itself (exact, even at a pole)
            return float(wrap_yaw(yaw0)), pitch0
        lon, lat = view_pixel_lonlat(point[0], point[1], yaw0, pitch0, fov_deg, width, height)
        return float(wrap_yaw(float(lon))), float(lat)

    while True:
        def inside(point: np.ndarray) -> bool:
            return zoom_inside_view(*direction(point), fov * (1 + MARGIN), yaw0, pitch0, fov_deg, width, height)

        # The zoom toward the view's centre always fits (it is narrower than the view): move
        # it toward the target as far as it still fits, first straight, then along each axis.
        point = _farthest(centre, target, inside)
        point = _farthest(point, np.array([target[0], point[1]]), inside)
        point = _farthest(point, np.array([point[0], target[1]]), inside)
        yaw, pitch = direction(point)
        if fov <= ZOOM_MIN_FOV or view_position(*direction(target), yaw, pitch, fov, width, height) is not None:
            return zoom(yaw, pitch, fov)
        fov = max(fov * SHRINK, ZOOM_MIN_FOV)


def _farthest(start: np.ndarray, goal: np.ndarray, inside: Any) -> np.ndarray:
    """The point of the segment from ``start`` (where ``inside`` holds) to ``goal`` farthest
    from ``start`` where ``inside`` holds, by bisection (``start`` itself if none nearer)."""
    if inside(goal):
        return goal
    low, high = 0.0, 1.0
    for _ in range(BISECTIONS):
        middle = (low + high) / 2
        low, high = (middle, high) if inside(start + middle * (goal - start)) else (low, middle)
    return start if low == 0.0 else start + low * (goal - start)


def is_zoom_view(observation: dict[str, Any]) -> bool:
    """Whether an observation is a zoom view (its ``zoom`` entry names a field of view)."""
    settings = observation.get("zoom")
    return settings is not None and float(np.asarray(settings, dtype=np.float64).reshape(-1)[2]) > 0


def next_zooms(agents: Sequence[Any], observations: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Take each zooming agent's observation into its chat; return the zoom action of every
    one that zooms now, by index. Agents with a new view get their boxes from one batched
    map step per (policy, crop settings). The rest are left to reply (non-zooming agents are
    not touched).

    A zoom the environment refused (it used the turn) becomes that turn's reply in the chat,
    written as the zoom action it was. A zoom view the agent did not ask for (the model's own
    ``zoom`` reply) is a new chat turn answered without zooming.
    """
    actions: dict[int, dict[str, Any]] = {}
    to_plan: dict[tuple, list[int]] = {}
    for index, agent in enumerate(agents):
        state: ZoomState | None = agent.zoom_state
        if state is None:
            continue
        observation = observations[index]
        if state.sent is not None:
            sent, state.sent = state.sent, None
            if is_zoom_view(observation):
                agent.chat.add_crops([Image.fromarray(np.asarray(observation["image"], dtype=np.uint8).copy())])
                if state.queued:
                    actions[index] = state.sent = state.queued.pop(0)
                continue
            action = format_action(ZOOM, sent["yaw"], sent["pitch"], sent["fov"])
            agent.chat.reply(format_reply(action, prompt_format=agent.prompt_format))
            state.queued = []
        agent.chat.observe(observation)
        if not is_zoom_view(observation):
            to_plan.setdefault((id(agent.policy), agent.crop), []).append(index)
    for indices in to_plan.values():
        first = agents[indices[0]]
        all_boxes = first.policy.crop_boxes([agents[i].chat for i in indices], first.crop)
        for index, boxes in zip(indices, all_boxes):
            agent, state = agents[index], agents[index].zoom_state
            agent.last_boxes = list(boxes[: state.per_turn])
            size, heading = agent.chat.turns[-1].image.size, observations[index]["heading"]
            zooms = [zoom_toward(box, size, heading, state.fov_deg) for box in agent.last_boxes]
            if zooms:
                actions[index] = state.sent = zooms[0]
                state.queued = zooms[1:]
    return actions
