"""Draw a :class:`~panoseek.scenes.layout.Layout` into an equirectangular panorama.

Two passes, both exact ray casts through the equirectangular pixel grid:

1. The room (floor, walls, ceiling or sky, openings) is cast per pixel with numpy at
   half resolution and upscaled: its surfaces are smooth, and half resolution keeps a
   2048x1024 panorama inside the time budget (benchmarks/scenes.py).
2. Each object card is drawn with OpenCV into a small RGBA sprite and warped into the
   panorama through the pixels of its angular bounding box only: for each of those
   pixels the ray meets the card's plane, which gives the sprite coordinate for
   ``cv2.remap``. Distortion near the poles and wrapping across the 0/360 seam follow
   from the geometry.

Hand-written because speed is the point: a general renderer (OpenGL, a ray tracer)
would be a heavy dependency for boxes and cards. Finally a mild blur and sensor noise
keep nothing pixel-perfect. Everything is deterministic for a layout.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from panoseek.envs.geometry import lonlat_to_pixel, lonlat_to_vector, pixel_to_lonlat, yaw_delta, yaw_to_lon
from panoseek.scenes.layout import Layout, Opening, Placement
from panoseek.scenes.library import draw_object

DEFAULT_WIDTH = 2048
_PRODUCTS = 16  # palette slots for shelf goods and book spines

# Palette slots: every background pixel is palette[index] * shade + haze * haze_colour.
(FLOOR, FLOOR_ALT, LINE, WALL, WALL_ALT, CEILING, LAMP, SKY, GLASS, WINDOW, FAR, FOLIAGE, MARKING, KERB,
 PRODUCT0) = range(15)


def render_layout(layout: Layout, width: int = DEFAULT_WIDTH, *, exclude: tuple[int, ...] = ()) -> np.ndarray:
    """The scene as an ``(width/2, width, 3)`` uint8 RGB panorama.

    ``exclude`` lists indices of ``layout.placements`` to leave out (tests compare
    a panorama with and without its target).
    """
    if width < 64 or width % 4:
        raise ValueError(f"panorama width must be a multiple of 4 and at least 64, got {width}")
    height = width // 2
    rng = np.random.default_rng([layout.seed, 7])
    background = _background(layout, width // 2, height // 2, rng)
    panorama = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    light = np.array(layout.tint, np.float32) * layout.brightness
    order = sorted(range(len(layout.placements)), key=lambda i: -layout.placements[i].distance)
    for index in order:
        if index not in exclude:
            _draw_card(panorama, layout.placements[index], light)
    panorama = cv2.GaussianBlur(panorama, (3, 3), float(rng.uniform(0.45, 0.8)))
    return _add_noise(panorama, rng)


# ------------------------------------------------------------------------- background


@lru_cache(maxsize=4)
def _rays(width: int, height: int) -> tuple[np.ndarray, ...]:
    """Unit ray (x, y, z) of every pixel centre, float32, read-only."""
    lon, lat = np.broadcast_arrays(*pixel_to_lonlat(np.arange(width)[None, :], np.arange(height)[:, None], width, height))
    vectors = lonlat_to_vector(lon, lat).astype(np.float32)
    arrays = (vectors[..., 0], vectors[..., 1], vectors[..., 2])
    for array in arrays:
        array.setflags(write=False)
    return arrays


def _hash(a, b=0) -> np.ndarray:
    """Per-cell pseudo-random value in [0, 1) from integer-valued cell indices (tiles, planks).

    Integer arithmetic only, so every CPU gives the same value (a sin-based hash would
    amplify the last-bit differences of vectorised sin between machines).
    """
    with np.errstate(over="ignore"):  # wrapping multiplication is the point
        h = np.asarray(a).astype(np.int32).view(np.uint32) * np.uint32(73856093)
        h = h ^ (np.asarray(b).astype(np.int32).view(np.uint32) * np.uint32(19349663))
        h = (h ^ (h >> np.uint32(13))) * np.uint32(0x5BD1E995)
        h = h ^ (h >> np.uint32(15))
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def _scale(shade: np.ndarray, mask: np.ndarray, factor) -> None:
    """``shade *= factor`` where ``mask`` holds, in place; arithmetic beats boolean indexing here."""
    shade *= 1.0 + mask * (np.asarray(factor, np.float32) - np.float32(1.0))


def _near_line(coord: np.ndarray, width: float) -> np.ndarray:
    """Whether a coordinate (in cell units) lies within ``width`` of a cell border."""
    return np.abs(coord - np.round(coord)) < width


def _background(layout: Layout, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    room = layout.room
    dx, dy, dz = _rays(width, height)
    rot = np.radians(room.rotation)
    rx = dx * np.float32(np.cos(rot)) + dz * np.float32(np.sin(rot))
    rz = dz * np.float32(np.cos(rot)) - dx * np.float32(np.sin(rot))
    # The walls: the nearer of the two wall planes the ray meets (a zero component gives inf).
    with np.errstate(divide="ignore"):
        tx = (np.copysign(np.float32(room.half_x), rx) - room.offset_x) / rx
        tz = (np.copysign(np.float32(room.half_z), rz) - room.offset_z) / rz
    on_x_wall = tx < tz
    t_wall = np.minimum(tx, tz)
    hit_x = room.offset_x + t_wall * rx
    hit_z = room.offset_z + t_wall * rz
    wall_y = room.camera_height + t_wall * dy
    along = np.where(on_x_wall, hit_z + 50.0, hit_x)

    # The floor is met only by rays below the horizon (the lower half of the rows), the
    # ceiling only by rays above; elsewhere a huge finite distance (inf would breed NaNs).
    low, up = slice(height // 2, None), slice(None, height // 2)
    t_floor = np.full((height, width), 1e6, np.float32)
    t_floor[low] = -room.camera_height / dy[low]
    t_ceiling = np.full((height, width), 1e6, np.float32)
    t_ceiling[up] = (room.height - room.camera_height) / dy[up]
    is_floor = t_floor < t_wall
    is_ceiling = (t_ceiling < t_wall) if room.indoor else np.zeros_like(is_floor)
    is_wall = ~is_floor & ~is_ceiling

    index = np.full((height, width), WALL, np.uint8)
    shade = np.ones((height, width), np.float32)
    haze = np.zeros((height, width), np.float32)

    _wall_texture(layout, index, shade, along, wall_y, is_wall, rng)
    # Directional light: each wall of the box its own brightness.
    wall_light = rng.uniform(0.72, 1.05, size=4).astype(np.float32)
    wall_id = on_x_wall.astype(np.int8) * 2 + np.where(on_x_wall, rx > 0, rz > 0).astype(np.int8)
    _scale(shade, is_wall, wall_light[wall_id])

    # Texture the floor and ceiling only in their halves of the image.
    _floor_texture(layout, index[low], shade[low], room.offset_x + t_floor[low] * rx[low],
                   room.offset_z + t_floor[low] * rz[low], t_floor[low], is_floor[low])
    if room.indoor:
        _ceiling_texture(layout, index[up], shade[up], room.offset_x + t_ceiling[up] * rx[up],
                         room.offset_z + t_ceiling[up] * rz[up], is_ceiling[up])
    else:
        is_sky = is_wall & (wall_y > _skyline(layout, along))
        index[is_sky] = SKY
        shade = np.where(is_sky, 0.8 + 0.25 * np.clip(dy, 0, 1), shade)
        clouds = cv2.resize(rng.random((6, 24)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
        haze = np.where(is_sky, np.clip(clouds - 0.45, 0, 1) * 1.6 + 0.35 * (1 - np.clip(dy * 3, 0, 1)), haze)

    for opening in layout.openings:
        if room.indoor:  # a dark frame around the doorway: the opening reads at a glance
            frame = (opening.yaw_range[0] - 0.8, opening.yaw_range[1] + 0.8)
            for cols in _column_slices(frame, width):
                edge = is_wall[:, cols] & (wall_y[:, cols] < opening.height + 0.18)
                index[:, cols][edge] = WALL_ALT
                shade[:, cols][edge] = 0.55
        for cols in _column_slices(opening.yaw_range, width):
            arrays = (index, shade, haze, dy, rx, rz, t_wall, wall_y, is_wall)
            _cut_opening(layout, opening, *(a[:, cols] for a in arrays))

    # Distance haze (aerial perspective) and a soft fall-off of the light with distance.
    distance = np.minimum(np.minimum(t_floor, t_wall), t_ceiling if room.indoor else t_wall)  # nearest surface
    far = (1.0 - np.exp(-distance / np.float32(45.0 if room.indoor else 120.0))) * (index != SKY)
    shade = shade * (1.0 - 0.25 * far)
    haze = haze + 0.35 * far.astype(np.float32)

    # Compose: palette colour * shade, blended towards the haze colour; light folded in first.
    light = np.array(layout.tint, np.float32) * layout.brightness
    palette = _palette(layout, rng) * light
    haze_colour = np.array(layout.sky_tone if not room.indoor else (235, 232, 225), np.float32) * light
    mix = np.float32(0.6) * haze
    lut = np.zeros((1, 256, 3), np.float32)
    lut[0, : len(palette)] = palette
    colour = cv2.LUT(cv2.merge([index, index, index]), lut)  # palette lookup, faster than palette[index]
    image = colour * (shade * (1.0 - mix))[..., None] + mix[..., None] * haze_colour
    return cv2.convertScaleAbs(image)  # saturating float -> uint8 in one pass


def _skyline(layout: Layout, along: np.ndarray) -> np.ndarray:
    """Top of the facades (or tree line) along the walls: varies building by building."""
    room = layout.room
    if layout.wall == "hedge":
        return room.height + 1.5 * np.sin(along * 0.9) + 1.0 * np.sin(along * 2.3 + 1.0)
    block = np.floor(along / 9.0)
    return room.height * (0.7 + 0.6 * _hash(block, float(layout.seed % 97)))


def _wall_texture(layout, index, shade, along, wall_y, mask, rng) -> None:
    kind = layout.wall
    y = wall_y
    if kind == "plain":
        index[mask & (y < 0.12)] = WALL_ALT
        _scale(shade, mask, 0.92 + 0.08 * np.clip(y / 4, 0, 1))
    elif kind == "panels":
        step = rng.uniform(1.2, 2.4)
        lines = _near_line(along / step, 0.006) | (np.abs(y - 1.1) < 0.03)
        index[mask & lines] = WALL_ALT
        index[mask & (y < 0.1)] = WALL_ALT
    elif kind == "glass":
        step = rng.uniform(1.5, 3.0)
        mullion = _near_line(along / step, 0.03) | (np.abs(y - 2.6) < 0.08)
        pane = mask & ~mullion & (y > 0.15)
        index[pane] = GLASS
        shade[pane] = (0.8 + 0.35 * np.clip((y[pane] - 0.15) / 8, 0, 1))
        index[mask & mullion] = WALL_ALT
    elif kind in ("shelves", "books"):
        top = 2.2 if kind == "shelves" else 3.0
        row_h = 0.4 if kind == "shelves" else 0.32
        item_w = 0.22 if kind == "shelves" else 0.05
        in_shelf = mask & (y < top) & (y > 0.1)
        row = np.floor(y / row_h)
        item = np.floor(along / item_w)
        goods = (PRODUCT0 + (_hash(item, row) * _PRODUCTS).astype(np.uint8)).astype(np.uint8)
        board = np.abs(y / row_h - np.round(y / row_h)) < 0.1
        index[in_shelf] = np.where(board[in_shelf], WALL_ALT, goods[in_shelf])
        _scale(shade, in_shelf, 0.75 + 0.25 * _hash(item + 3.0, row))
    elif kind == "windows":
        storey = np.floor(y / 3.2)
        bay = along / 2.6
        in_window = (np.abs(bay - np.floor(bay) - 0.5) < 0.24) & (np.abs(y / 3.2 - storey - 0.55) < 0.25) & (y > 3.4)
        shop_front = (y > 0.3) & (y < 2.8) & (np.abs(along / 7.0 - np.floor(along / 7.0) - 0.5) < 0.38)
        index[mask & (in_window | shop_front)] = WINDOW
        _scale(shade, mask & in_window, 0.7 + 0.5 * _hash(np.floor(bay), storey))
        block = np.floor(along / 9.0)
        _scale(shade, mask & ~in_window & ~shop_front, 0.75 + 0.4 * _hash(block + 7.0, 1.0))
    elif kind == "brick":
        row = y / 0.3
        offset = np.floor(row) * 0.5
        mortar = _near_line(row, 0.06) | _near_line(along / 0.6 + offset, 0.03)
        index[mask & mortar] = WALL_ALT
        _scale(shade, mask, 0.85 + 0.2 * _hash(np.floor(along / 0.6 + offset), np.floor(row)))
    elif kind == "hedge":
        index[mask] = FOLIAGE
        _scale(shade, mask, 0.7 + 0.4 * _hash(np.floor(along * 2.0), np.floor(y * 2.0)))


def _floor_texture(layout, index, shade, fx, fz, t, mask) -> None:
    kind = layout.floor
    fade = np.clip(1.0 - t / 30.0, 0.0, 1.0)
    if kind in ("tiles", "stone", "paving"):
        size = {"tiles": 0.6, "stone": 1.4, "paving": 0.4}[kind]
        u, v = fx / size, fz / size
        alt = ((np.floor(u) + np.floor(v)) % 2 == 1) if kind == "tiles" else (_hash(np.floor(u), np.floor(v)) > 0.5)
        grout = (_near_line(u, 0.02) | _near_line(v, 0.02)) & (fade > 0.25)
        index[mask & alt] = FLOOR_ALT
        index[mask & ~alt] = FLOOR
        index[mask & grout] = LINE
    elif kind == "wood":
        v = fz / 0.18
        plank = _hash(np.floor(v), np.floor(fx / 1.6 + np.floor(v) * 0.37))
        index[mask] = np.where(plank[mask] > 0.5, FLOOR_ALT, FLOOR)
        index[mask & _near_line(v, 0.06) & (fade > 0.3)] = LINE
    elif kind == "carpet":
        index[mask] = FLOOR
        _scale(shade, mask, 0.93 + 0.1 * _hash(np.floor(fx * 3.0), np.floor(fz * 3.0)))
    elif kind == "asphalt":
        room = layout.room
        index[mask] = FLOOR
        _scale(shade, mask, 0.9 + 0.15 * _hash(np.floor(fx * 4.0), np.floor(fz * 4.0)))
        pavement = np.abs(fx) > room.half_x - 3.0
        index[mask & pavement] = KERB
        dashes = (np.abs(fx) < 0.09) & ((fz / 6.0 - np.floor(fz / 6.0)) < 0.5)
        index[mask & dashes & ~pavement] = MARKING
    elif kind == "grass":
        index[mask] = FLOOR
        _scale(shade, mask, 0.88 + 0.16 * _hash(np.floor(fx * 5.0), np.floor(fz * 5.0)))
        path = np.abs(fx * 0.6 + fz * 0.3) < 1.2
        index[mask & path] = FLOOR_ALT
    _scale(shade, mask, 0.85 + 0.15 * fade)


def _ceiling_texture(layout, index, shade, cx, cz, mask) -> None:
    spacing = 2.4
    u, v = cx / spacing, cz / spacing
    lamp = (np.abs(u - np.floor(u) - 0.5) < 0.12) & (np.abs(v - np.floor(v) - 0.5) < 0.3)
    index[mask] = CEILING
    index[mask & (_near_line(u, 0.008) | _near_line(v, 0.008))] = WALL_ALT
    index[mask & lamp] = LAMP
    _scale(shade, mask & ~lamp, 0.85)


def _column_slices(yaw_range: tuple[float, float], width: int) -> list[slice]:
    """Column slices of the pixels whose yaw lies in ``yaw_range`` (two when it wraps the seam)."""
    u0, _ = lonlat_to_pixel(yaw_to_lon(yaw_range[0]), 0.0, width, 2)
    u1, _ = lonlat_to_pixel(yaw_to_lon(yaw_range[1]), 0.0, width, 2)
    first, last = int(np.ceil(u0)), int(np.floor(u1)) + 1
    if first <= last:
        return [slice(first, last)]
    return [slice(first, width), slice(0, last)]


def _cut_opening(layout, opening: Opening, index, shade, haze, dy, rx, rz, t_wall, wall_y, is_wall):
    """Replace the wall inside an opening by the passage behind it (floor, top, far end).

    The arrays are the columns of the opening's yaw range (views into the full arrays).
    """
    mask = is_wall & (wall_y < opening.height)
    if not mask.any():
        return
    room = layout.room
    t_end = t_wall + opening.depth
    t_floor = -room.camera_height / dy  # pixel centres never lie on the horizon: dy != 0
    passage_floor = mask & (dy < 0) & (t_floor < t_end)
    _floor_texture(layout, index, shade, room.offset_x + t_floor * rx, room.offset_z + t_floor * rz, t_floor,
                   passage_floor)
    _scale(shade, passage_floor, 0.7)
    rest = mask & ~passage_floor
    if np.isfinite(opening.height):
        t_top = (opening.height - room.camera_height) / dy
        top = rest & (dy > 0) & (t_top < t_end)
        index[top] = CEILING
        shade[top] = 0.45
        rest = rest & ~top
        index[rest] = FAR
        shade[rest] = 1.0
    else:
        sky = rest & (dy > 0.02)
        index[sky] = SKY
        shade[sky] = 0.8 + 0.25 * np.clip(dy[sky], 0, 1)
        index[rest & ~sky] = FAR
        shade[rest & ~sky] = 0.9
        haze[rest & ~sky] = 0.5


def _palette(layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """Colours of the palette slots for this scene."""
    def tone(base, jitter=12.0):
        return np.clip(np.array(base, np.float32) + rng.uniform(-jitter, jitter, 3), 0, 255)

    floor = tone(layout.floor_tone)
    wall = tone(layout.wall_tone)
    palette = np.zeros((PRODUCT0 + _PRODUCTS, 3), np.float32)
    palette[FLOOR] = floor
    palette[FLOOR_ALT] = floor * rng.uniform(0.78, 0.92)
    palette[LINE] = floor * 0.6
    palette[WALL] = wall
    palette[WALL_ALT] = wall * 0.65
    palette[CEILING] = tone(layout.ceiling_tone)
    palette[LAMP] = (255, 252, 240)
    palette[SKY] = layout.sky_tone
    palette[GLASS] = tone((150, 185, 205), 20)
    palette[WINDOW] = tone((70, 90, 110), 15)
    palette[FAR] = tone((240, 235, 220) if layout.room.indoor else (175, 185, 195), 15)
    palette[FOLIAGE] = tone((60, 105, 50), 15)
    palette[MARKING] = (235, 235, 225)
    palette[KERB] = tone((165, 160, 150), 10)
    palette[PRODUCT0:] = rng.integers(40, 240, size=(_PRODUCTS, 3))
    if layout.wall == "books":
        palette[PRODUCT0:] = palette[PRODUCT0:] * 0.5 + np.array([110, 60, 40]) * 0.5
    return palette


# ------------------------------------------------------------------------------ cards


def _draw_card(panorama: np.ndarray, card: Placement, light: np.ndarray) -> None:
    """Warp one object's sprite into the panorama through its angular bounding box."""
    height, width = panorama.shape[:2]
    lon = yaw_to_lon(card.yaw)
    p0, p1 = card.pitch_range
    u0, v1 = lonlat_to_pixel(lon - card.half_yaw, p0, width, height)
    u1, v0 = lonlat_to_pixel(lon + card.half_yaw, p1, width, height)
    cols = np.arange(int(np.floor(u0)) - 1, int(np.ceil(u1)) + 2)
    rows = np.arange(max(0, int(np.floor(v0)) - 1), min(height, int(np.ceil(v1)) + 2))
    if rows.size == 0 or cols.size == 0:
        return
    sprite_h = int(np.clip((v1 - v0) * 1.2, 8, 480))
    sprite = draw_object(card.spec, sprite_h, aspect=card.width / card.height).astype(np.float32)
    sprite[..., :3] *= light
    sh, sw = sprite.shape[:2]

    # Ray of pixel (lon, lat) meets the card's plane (distance d along the card's yaw) at
    # lateral offset d*tan(a) and height d*tan(lat)/cos(a) above the eye, a = lon - card yaw.
    pix_lon, pix_lat = pixel_to_lonlat(cols, rows, width, height)
    a = np.radians(yaw_delta(card.yaw, pix_lon)).astype(np.float32)
    in_front = np.abs(a) < np.pi / 2 - 1e-3
    lateral = card.distance * np.tan(a)
    up = (card.distance * np.tan(np.radians(pix_lat)).astype(np.float32))[:, None] / np.cos(a)[None, :]
    map_x = np.where(in_front, (lateral / card.width + 0.5) * sw - 0.5, -10.0).astype(np.float32)
    map_y = ((1.0 - (up + (card.camera_height - card.bottom)) / card.height) * sh - 0.5).astype(np.float32)
    map_x = np.broadcast_to(map_x[None, :], map_y.shape).copy()
    warped = cv2.remap(sprite, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = warped[..., 3:] * np.float32(1.0 / 255.0)
    if 0 <= cols[0] and cols[-1] < width:  # no wrap: a plain slice (the common case)
        target = panorama[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        target[:] = (warped[..., :3] * alpha + target * (1.0 - alpha)).astype(np.uint8)
        return
    cols = np.mod(cols, width)
    region = panorama[rows[:, None], cols[None, :]].astype(np.float32)
    blended = warped[..., :3] * alpha + region * (1.0 - alpha)
    panorama[rows[:, None], cols[None, :]] = np.clip(blended, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ noise


@lru_cache(maxsize=2)
def _noise_tiles(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Two fixed non-negative noise fields, taller than the panorama (rows are offset per scene)."""
    rng = np.random.default_rng(20240611)
    up = rng.integers(0, 5, size=(height + 64, width, 3), dtype=np.uint8)
    down = rng.integers(0, 5, size=(height + 64, width, 3), dtype=np.uint8)
    up.setflags(write=False)
    down.setflags(write=False)
    return up, down


def _add_noise(panorama: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean sensor noise of +-4 levels, from fixed fields at a per-scene offset (fast)."""
    height = panorama.shape[0]
    up, down = _noise_tiles(height, panorama.shape[1])
    a, b = rng.integers(0, 64, size=2)
    return cv2.subtract(cv2.add(panorama, up[a:a + height]), down[b:b + height])
