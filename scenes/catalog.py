"""The scene catalogue: six macro categories, eighteen fine scene types, their styles.

A :class:`SceneType` says what a place is made of: indoor or outdoor, room size,
surface materials, palettes, the objects that clutter it, and the destinations its
signs name (for path search). The generator draws every scene from one of these.
"""

from __future__ import annotations

from dataclasses import dataclass

# Surface materials understood by panoseek.scenes.raster.
FLOORS = ("tiles", "wood", "stone", "carpet", "asphalt", "grass", "paving")
WALLS = ("plain", "panels", "glass", "shelves", "books", "windows", "brick", "hedge")


@dataclass(frozen=True)
class SceneType:
    """A fine scene type and the style rules its scenes are drawn with."""

    name: str
    macro: str
    label: str  # readable name, e.g. "airport gate hall"
    indoor: bool
    half_extent: tuple[float, float]  # range of the room's half sizes (m)
    ceiling: tuple[float, float]  # ceiling height range (m); facade height outdoors
    floors: tuple[str, ...]
    walls: tuple[str, ...]
    clutter: tuple[str, ...]  # object categories typical of the place
    numbered: tuple[tuple[str, str], ...]  # (singular, plural) of numbered destinations
    services: tuple[str, ...]  # pictogram destinations
    wall_tones: tuple[tuple[int, int, int], ...]
    floor_tones: tuple[tuple[int, int, int], ...]


_PEOPLE = ("person", "person", "child")
_TRANSPORT_SERVICES = ("trains", "buses", "taxis", "exit", "toilets", "lifts", "stairs", "cafe", "information", "parking")
_LIGHT_WALLS = ((220, 215, 205), (200, 205, 210), (230, 225, 210), (190, 195, 185), (215, 200, 180))
_WARM_WALLS = ((190, 160, 130), (170, 140, 110), (210, 190, 160), (160, 150, 140))
_STONE_FLOORS = ((170, 165, 155), (150, 150, 150), (185, 175, 160), (120, 120, 125))
_WOOD_FLOORS = ((150, 105, 65), (170, 125, 80), (120, 85, 55))
_FACADES = ((180, 150, 120), (200, 190, 170), (150, 90, 70), (170, 175, 180), (210, 200, 160))
_GREEN = ((90, 140, 70), (110, 150, 80))

SCENE_TYPES: dict[str, SceneType] = {
    t.name: t
    for t in (
        # transport hub
        SceneType("train_station", "transport hub", "train station concourse", True, (10, 22), (6, 10),
                  ("stone", "tiles"), ("panels", "plain", "glass"),
                  ("screen", "clock", "ticket_machine", "bench", "suitcase", "backpack", "trash_bin", *_PEOPLE,
                   "vending_machine", "kiosk", "luggage_trolley"),
                  (("Platform", "Platforms"),), _TRANSPORT_SERVICES, _LIGHT_WALLS, _STONE_FLOORS),
        SceneType("airport_gate", "transport hub", "airport gate hall", True, (12, 25), (5, 8),
                  ("carpet", "tiles"), ("glass", "panels"),
                  ("screen", "suitcase", "backpack", "chair", "luggage_trolley", *_PEOPLE, "potted_plant", "atm",
                   "vending_machine", "trash_bin"),
                  (("Gate", "Gates"),), ("flights", "taxis", "exit", "toilets", "cafe", "information", "lifts"),
                  _LIGHT_WALLS, ((110, 110, 130), (150, 140, 130), (170, 170, 175))),
        SceneType("metro_platform", "transport hub", "metro station hall", True, (8, 18), (3.5, 5),
                  ("tiles", "stone"), ("plain", "panels", "brick"),
                  ("screen", "clock", "bench", "ticket_machine", "trash_bin", *_PEOPLE, "backpack", "poster"),
                  (("Platform", "Platforms"), ("Exit", "Exits")), ("trains", "exit", "stairs", "lifts", "buses"),
                  ((200, 200, 190), (180, 200, 200), (210, 200, 170)), _STONE_FLOORS),
        # retail
        SceneType("supermarket", "retail", "supermarket", True, (10, 22), (4, 6), ("tiles",), ("shelves", "plain"),
                  ("shelf", "crate", "shopping_bag", *_PEOPLE, "counter", "potted_plant", "trash_bin", "menu_board"),
                  (("Aisle", "Aisles"),), ("exit", "toilets", "cafe", "information", "parking"), _LIGHT_WALLS,
                  ((200, 200, 195), (180, 180, 175))),
        SceneType("shopping_mall", "retail", "shopping mall", True, (10, 22), (6, 10), ("stone", "tiles"),
                  ("panels", "glass", "plain"),
                  ("kiosk", "bench", "potted_plant", "shopping_bag", *_PEOPLE, "trash_bin", "banner", "atm",
                   "stroller", "fountain"),
                  (("Shop", "Shops"), ("Unit", "Units")), ("exit", "toilets", "lifts", "cafe", "parking", "stairs"),
                  _LIGHT_WALLS, _STONE_FLOORS),
        SceneType("market_hall", "retail", "market hall", True, (12, 25), (6, 10), ("stone", "paving"),
                  ("brick", "plain", "panels"),
                  ("kiosk", "crate", "counter", *_PEOPLE, "menu_board", "shopping_bag", "umbrella", "table", "chair"),
                  (("Hall", "Halls"), ("Stall", "Stalls")), ("exit", "toilets", "cafe", "parking"), _WARM_WALLS,
                  _STONE_FLOORS),
        # street
        SceneType("city_street", "street", "city street", False, (7, 12), (10, 22), ("asphalt",),
                  ("windows", "brick"),
                  ("car", "bus", "street_lamp", "bicycle", "trash_bin", *_PEOPLE, "road_sign", "mailbox", "hydrant",
                   "bollard", "tree", "street_sign"),
                  (("Block", "Blocks"),), ("buses", "trains", "parking", "taxis", "bicycles", "information"),
                  _FACADES, ((70, 70, 75), (85, 85, 90))),
        SceneType("town_square", "street", "town square", False, (18, 32), (9, 18), ("paving", "stone"),
                  ("windows", "brick"),
                  ("fountain", "bench", "street_lamp", "tree", *_PEOPLE, "bicycle", "kiosk", "umbrella", "flag",
                   "bollard", "trash_bin"),
                  (("Block", "Blocks"),), ("buses", "trains", "parking", "taxis", "information", "toilets"),
                  _FACADES, ((160, 150, 140), (140, 135, 130))),
        SceneType("shopping_street", "street", "shopping street", False, (6, 10), (8, 15), ("paving",),
                  ("windows", "brick"),
                  ("kiosk", "street_lamp", "bench", *_PEOPLE, "shopping_bag", "bicycle", "trash_bin", "umbrella",
                   "potted_plant", "bollard", "street_sign"),
                  (("Shop", "Shops"),), ("parking", "buses", "taxis", "toilets", "cafe", "bicycles"), _FACADES,
                  ((150, 140, 130), (175, 165, 150))),
        # public institution
        SceneType("library", "public institution", "library reading room", True, (8, 18), (4, 8), ("wood", "carpet"),
                  ("books", "panels"),
                  ("table", "chair", "lamp", *_PEOPLE, "potted_plant", "backpack", "clock", "painting", "cup"),
                  (("Room", "Rooms"), ("Section", "Sections")), ("exit", "toilets", "lifts", "stairs", "cafe",
                                                                 "information"),
                  _WARM_WALLS, _WOOD_FLOORS),
        SceneType("hospital_lobby", "public institution", "hospital lobby", True, (10, 20), (3.5, 6),
                  ("tiles", "stone"), ("plain", "panels"),
                  ("chair", "bench", "potted_plant", *_PEOPLE, "vending_machine", "screen", "fire_extinguisher",
                   "clock", "stroller", "counter"),
                  (("Ward", "Wards"), ("Room", "Rooms")), ("first aid", "exit", "toilets", "lifts", "cafe",
                                                           "information", "parking"),
                  ((230, 235, 235), (210, 225, 230), (225, 230, 215)), ((200, 205, 205), (180, 190, 190))),
        SceneType("museum_gallery", "public institution", "museum gallery", True, (10, 22), (5, 9), ("wood", "stone"),
                  ("plain", "panels"),
                  ("painting", "vase", "bench", *_PEOPLE, "banner", "potted_plant", "fire_extinguisher"),
                  (("Gallery", "Galleries"), ("Room", "Rooms")), ("exit", "toilets", "cafe", "information", "lifts",
                                                                  "stairs"),
                  ((235, 232, 225), (200, 60, 60), (60, 80, 120), (225, 220, 205)), _WOOD_FLOORS),
        # workplace
        SceneType("open_office", "workplace", "open-plan office", True, (8, 18), (3, 4.5), ("carpet", "wood"),
                  ("plain", "glass", "panels"),
                  ("table", "chair", "screen", "potted_plant", *_PEOPLE, "lamp", "backpack", "crate", "cup",
                   "painting", "trash_bin"),
                  (("Room", "Rooms"), ("Desk", "Desks")), ("exit", "toilets", "lifts", "stairs", "cafe"),
                  _LIGHT_WALLS, ((110, 115, 125), (140, 120, 100), (100, 110, 100))),
        SceneType("hotel_lobby", "workplace", "hotel lobby", True, (9, 18), (4, 8), ("stone", "wood", "carpet"),
                  ("panels", "plain"),
                  ("counter", "potted_plant", "suitcase", "luggage_trolley", *_PEOPLE, "lamp", "painting", "clock",
                   "bench", "vase"),
                  (("Room", "Rooms"), ("Suite", "Suites")), ("exit", "lifts", "toilets", "cafe", "parking", "taxis"),
                  _WARM_WALLS, _STONE_FLOORS),
        SceneType("classroom_hall", "workplace", "school hallway", True, (6, 14), (3, 4.5), ("tiles", "wood"),
                  ("plain", "panels", "brick"),
                  ("door", "poster", "backpack", *_PEOPLE, "trash_bin", "clock", "fire_extinguisher", "bench",
                   "potted_plant"),
                  (("Room", "Rooms"),), ("exit", "toilets", "stairs", "cafe", "first aid", "information"),
                  ((220, 210, 170), (200, 215, 220), (230, 220, 200)), ((170, 160, 140), (150, 150, 140))),
        # leisure
        SceneType("city_park", "leisure", "city park", False, (15, 35), (4, 8), ("grass",), ("hedge",),
                  ("tree", "bench", *_PEOPLE, "bicycle", "street_lamp", "trash_bin", "fountain", "umbrella", "balloon",
                   "kiosk", "stroller"),
                  (("Field", "Fields"), ("Path", "Paths")), ("toilets", "cafe", "exit", "parking", "bicycles",
                                                             "buses"),
                  ((80, 120, 60),), _GREEN),
        SceneType("food_court", "leisure", "food court", True, (12, 24), (4, 8), ("tiles", "stone"),
                  ("panels", "plain", "glass"),
                  ("table", "chair", "kiosk", "menu_board", *_PEOPLE, "trash_bin", "cup", "potted_plant", "counter",
                   "shopping_bag"),
                  (("Stall", "Stalls"),), ("toilets", "exit", "lifts", "parking", "stairs"), _WARM_WALLS,
                  _STONE_FLOORS),
        SceneType("sports_hall", "leisure", "sports centre hall", True, (10, 20), (7, 11), ("wood",),
                  ("panels", "plain", "brick"),
                  ("bench", "backpack", *_PEOPLE, "flag", "trash_bin", "banner", "clock", "crate", "vending_machine",
                   "traffic_cone"),
                  (("Court", "Courts"),), ("exit", "toilets", "stairs", "cafe", "first aid"),
                  ((200, 200, 190), (170, 190, 210)), ((190, 140, 80), (170, 120, 70))),
    )
}

MACROS = tuple(dict.fromkeys(t.macro for t in SCENE_TYPES.values()))

# Fine types held out of train/val/test: synth:test-unseen draws only from these (one per macro).
UNSEEN_TYPES = ("metro_platform", "market_hall", "shopping_street", "museum_gallery", "hotel_lobby", "food_court")
SEEN_TYPES = tuple(name for name in SCENE_TYPES if name not in UNSEEN_TYPES)


def scene_type(name: str) -> SceneType:
    """The scene type called ``name``; the error lists the valid names."""
    try:
        return SCENE_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown scene type {name!r}; known: {', '.join(SCENE_TYPES)}") from None
