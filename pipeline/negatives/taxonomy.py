"""Built-in vocabulary for hard negatives: the 80 COCO categories, their supercategories, synonyms, a few
sub-concepts (man / woman / child ... under person) and hypernyms (animal, pet, vehicle, fruit ...).

A *concept* is a node of a small tree; each has surface *terms* (singular forms; plurals are derived). A negative
may never name a concept that is annotated in the image, nor an ancestor (``animal`` when a dog is there) nor a
descendant (``man`` when ``person`` is annotated) of one. Siblings stay allowed (``woman`` when only ``man`` is).
Plain data: edit here to extend the vocabulary, nothing else changes.
"""

from __future__ import annotations

# (name, supercategory) in COCO order (category ids 1..90 with gaps; the order is what matters here)
COCO_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("person", "person"), ("bicycle", "vehicle"), ("car", "vehicle"), ("motorcycle", "vehicle"),
    ("airplane", "vehicle"), ("bus", "vehicle"), ("train", "vehicle"), ("truck", "vehicle"), ("boat", "vehicle"),
    ("traffic light", "outdoor"), ("fire hydrant", "outdoor"), ("stop sign", "outdoor"),
    ("parking meter", "outdoor"), ("bench", "outdoor"), ("bird", "animal"), ("cat", "animal"), ("dog", "animal"),
    ("horse", "animal"), ("sheep", "animal"), ("cow", "animal"), ("elephant", "animal"), ("bear", "animal"),
    ("zebra", "animal"), ("giraffe", "animal"), ("backpack", "accessory"), ("umbrella", "accessory"),
    ("handbag", "accessory"), ("tie", "accessory"), ("suitcase", "accessory"), ("frisbee", "sports"),
    ("skis", "sports"), ("snowboard", "sports"), ("sports ball", "sports"), ("kite", "sports"),
    ("baseball bat", "sports"), ("baseball glove", "sports"), ("skateboard", "sports"), ("surfboard", "sports"),
    ("tennis racket", "sports"), ("bottle", "kitchen"), ("wine glass", "kitchen"), ("cup", "kitchen"),
    ("fork", "kitchen"), ("knife", "kitchen"), ("spoon", "kitchen"), ("bowl", "kitchen"), ("banana", "food"),
    ("apple", "food"), ("sandwich", "food"), ("orange", "food"), ("broccoli", "food"), ("carrot", "food"),
    ("hot dog", "food"), ("pizza", "food"), ("donut", "food"), ("cake", "food"), ("chair", "furniture"),
    ("couch", "furniture"), ("potted plant", "furniture"), ("bed", "furniture"), ("dining table", "furniture"),
    ("toilet", "furniture"), ("tv", "electronic"), ("laptop", "electronic"), ("mouse", "electronic"),
    ("remote", "electronic"), ("keyboard", "electronic"), ("cell phone", "electronic"), ("microwave", "appliance"),
    ("oven", "appliance"), ("toaster", "appliance"), ("sink", "appliance"), ("refrigerator", "appliance"),
    ("book", "indoor"), ("clock", "indoor"), ("vase", "indoor"), ("scissors", "indoor"), ("teddy bear", "indoor"),
    ("hair drier", "indoor"), ("toothbrush", "indoor"),
)

# supercategory concept -> its terms (empty: a COCO grouping nobody says out loud)
SUPERCATEGORY_TERMS: dict[str, tuple[str, ...]] = {
    "person": (), "vehicle": ("vehicle", "transportation"), "outdoor": (), "animal": ("animal", "creature",
    "mammal", "wildlife", "beast"), "accessory": ("accessory",), "sports": ("sports equipment", "equipment"),
    "kitchen": ("kitchenware", "utensil", "tableware", "dish", "dishware"), "food": ("food", "meal", "snack"),
    "furniture": ("furniture",), "electronic": ("electronics", "electronic", "device", "gadget"),
    "appliance": ("appliance",), "indoor": (),
}

# extra hypernym concepts: name -> (parent or None, terms, children)
HYPERNYMS: dict[str, tuple[str | None, tuple[str, ...], tuple[str, ...]]] = {
    "pet": ("animal", ("pet",), ("dog", "cat")),
    "livestock": ("animal", ("livestock", "farm animal"), ("cow", "sheep", "horse")),
    "fruit": ("food", ("fruit",), ("banana", "apple", "orange")),
    "vegetable": ("food", ("vegetable", "veggie", "produce"), ("broccoli", "carrot")),
    "dessert": ("food", ("dessert", "pastry"), ("donut", "cake")),
    "bag": ("accessory", ("bag", "luggage", "baggage"), ("backpack", "handbag", "suitcase")),
    "board": ("sports", ("board",), ("skateboard", "surfboard", "snowboard")),
    "plant": (None, ("plant", "greenery"), ("potted plant", "broccoli")),
    "computer": ("electronic", ("computer", "pc"), ("laptop", "keyboard", "mouse")),
    "container": (None, ("container",), ("bottle", "cup", "bowl", "vase", "wine glass")),
    "toy": (None, ("toy",), ("teddy bear", "kite", "frisbee")),
}

# synonyms (same concept) of each COCO category; the category name itself is always a term
SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": ("people", "human", "individual", "someone", "somebody", "pedestrian", "crowd"),
    "bicycle": ("bike", "cycle"), "motorcycle": ("motorbike", "bike", "scooter", "moped"),
    "car": ("automobile", "sedan", "taxi", "cab", "suv", "jeep", "van"),
    "airplane": ("plane", "aircraft", "jet", "airliner", "aeroplane"), "bus": ("coach",),
    "train": ("locomotive", "tram", "railcar", "subway"), "truck": ("lorry", "pickup", "van"),
    "boat": ("ship", "sailboat", "yacht", "canoe", "kayak", "ferry", "vessel"),
    "traffic light": ("traffic signal", "stoplight", "stop light", "signal light"),
    "fire hydrant": ("hydrant",), "stop sign": (), "parking meter": ("meter",), "bench": ("pew",),
    "bird": ("pigeon", "seagull", "gull", "duck", "goose", "parrot", "sparrow", "swan", "owl", "eagle"),
    "cat": ("kitten", "kitty", "feline"), "dog": ("puppy", "pup", "doggy", "canine", "hound"),
    "horse": ("pony", "foal", "stallion", "mare"), "sheep": ("lamb", "ram"),
    "cow": ("cattle", "bull", "calf", "ox", "steer"), "elephant": (), "bear": ("grizzly", "polar bear"),
    "zebra": (), "giraffe": (), "backpack": ("rucksack", "knapsack"), "umbrella": ("parasol",),
    "handbag": ("purse", "clutch"), "tie": ("necktie",), "suitcase": ("luggage", "baggage"),
    "frisbee": ("flying disc", "disc"), "skis": ("ski",), "snowboard": (),
    "sports ball": ("ball", "football", "soccer ball", "basketball", "tennis ball", "volleyball"),
    "kite": (), "baseball bat": ("bat",), "baseball glove": ("glove", "mitt"), "skateboard": ("skate board",),
    "surfboard": ("surf board",), "tennis racket": ("racket", "racquet"), "bottle": (),
    "wine glass": ("glass", "goblet"), "cup": ("mug", "glass", "teacup"), "fork": (), "knife": (), "spoon": (),
    "bowl": (), "banana": (), "apple": (), "sandwich": ("burger", "hamburger", "sub"), "orange": ("tangerine",),
    "broccoli": (), "carrot": (), "hot dog": ("hotdog",), "pizza": (), "donut": ("doughnut",),
    "cake": ("cupcake",), "chair": ("stool",), "couch": ("sofa", "loveseat"), "potted plant": ("houseplant",),
    "bed": (), "dining table": ("table", "desk"), "toilet": (), "tv": ("television", "monitor", "screen"),
    "laptop": ("notebook computer",), "mouse": (), "remote": ("remote control", "controller"), "keyboard": (),
    "cell phone": ("phone", "cellphone", "smartphone", "mobile phone", "telephone"),
    "microwave": (), "oven": ("stove",), "toaster": (), "sink": (), "refrigerator": ("fridge",), "book": (),
    "clock": (), "vase": (), "scissors": (), "teddy bear": ("teddy", "stuffed animal"),
    "hair drier": ("hair dryer", "hairdryer", "blow dryer"), "toothbrush": (),
}

# sub-concepts of person (each its own concept so that siblings can be swapped: man <-> woman)
PERSON_KINDS: dict[str, tuple[str, ...]] = {
    "man": ("man", "guy", "gentleman", "male"), "woman": ("woman", "lady", "female"),
    "boy": ("boy",), "girl": ("girl",), "child": ("child", "kid", "toddler", "baby", "infant"),
    "player": ("player", "athlete"), "skier": ("skier",), "snowboarder": ("snowboarder",),
    "surfer": ("surfer",), "skateboarder": ("skateboarder",), "rider": ("rider", "cyclist", "biker"),
    "driver": ("driver",), "passenger": ("passenger",), "chef": ("chef", "cook"),
}
SIBLING_SWAPS: dict[str, str] = {"man": "woman", "woman": "man", "boy": "girl", "girl": "boy"}

# inclusive (collective) words per concept: they are only ever replaced by another inclusive word (Ferret rule 7)
INCLUSIVE: dict[str, str] = {  # plural surface form -> concept
    "people": "person", "animals": "animal", "vehicles": "vehicle", "food": "food", "furniture": "furniture",
    "electronics": "electronic", "fruits": "fruit", "vegetables": "vegetable", "appliances": "appliance",
    "kitchenware": "kitchen", "pets": "pet", "bags": "bag", "desserts": "dessert", "toys": "toy",
}

# hand-picked confusable pairs (look-alikes), boosted when ranking absent categories
CONFUSABLE_PAIRS: tuple[tuple[str, str], ...] = (
    ("dog", "cat"), ("horse", "zebra"), ("cow", "sheep"), ("cow", "horse"), ("bicycle", "motorcycle"),
    ("car", "truck"), ("bus", "truck"), ("bus", "train"), ("cup", "wine glass"), ("cup", "bowl"),
    ("bottle", "vase"), ("laptop", "tv"), ("laptop", "keyboard"), ("sink", "toilet"), ("couch", "bed"),
    ("couch", "chair"), ("donut", "cake"), ("orange", "apple"), ("banana", "carrot"), ("broccoli", "potted plant"),
    ("skis", "snowboard"), ("surfboard", "skateboard"), ("surfboard", "snowboard"), ("fork", "spoon"),
    ("knife", "scissors"), ("bear", "teddy bear"), ("handbag", "backpack"), ("suitcase", "handbag"),
    ("remote", "cell phone"), ("microwave", "oven"), ("toaster", "microwave"), ("sports ball", "frisbee"),
    ("kite", "umbrella"), ("bench", "chair"), ("dining table", "bench"), ("elephant", "giraffe"),
    ("bird", "kite"), ("airplane", "bird"), ("boat", "surfboard"), ("pizza", "cake"), ("sandwich", "hot dog"),
    ("refrigerator", "oven"), ("clock", "stop sign"), ("fire hydrant", "parking meter"),
    ("traffic light", "stop sign"), ("tennis racket", "baseball bat"), ("baseball glove", "sports ball"),
    ("toothbrush", "hair drier"), ("book", "laptop"), ("mouse", "remote"), ("person", "teddy bear"),
)

# scene groups over supercategories: a crude co-occurrence prior (two supercategories that share a scene co-occur)
SCENES: dict[str, tuple[str, ...]] = {
    "street": ("vehicle", "outdoor", "person", "accessory"),
    "kitchen": ("kitchen", "food", "appliance", "furniture"),
    "living room": ("furniture", "electronic", "indoor", "person"),
    "dining": ("food", "kitchen", "furniture", "person"),
    "sports field": ("sports", "person", "accessory", "outdoor"),
    "countryside": ("animal", "outdoor", "person", "vehicle"),
    "office": ("electronic", "indoor", "furniture", "accessory"),
}

IRREGULAR_PLURALS: dict[str, str] = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice", "knife": "knives",
    "sheep": "sheep", "ox": "oxen", "goose": "geese", "skis": "skis", "ski": "skis", "scissors": "scissors",
    "cattle": "cattle", "wildlife": "wildlife", "food": "food", "furniture": "furniture", "luggage": "luggage",
    "baggage": "baggage", "broccoli": "broccoli", "equipment": "equipment", "kitchenware": "kitchenware",
    "electronics": "electronics", "greenery": "greenery", "produce": "produce", "tableware": "tableware",
    "dishware": "dishware", "transportation": "transportation", "people": "people", "crowd": "crowds",
    "fish": "fish", "deer": "deer", "shelf": "shelves", "leaf": "leaves", "calf": "calves", "tv": "tvs",
    "bus": "buses", "coach": "coaches", "sandwich": "sandwiches",
}

NUMBER_WORDS: dict[str, int] = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "a pair of": 2, "a couple of": 2, "both": 2,
}
NUMBER_NAMES = {v: k for k, v in NUMBER_WORDS.items() if " " not in k and k != "both"}

QUANTIFIERS = ("a few", "several", "some", "many", "a group of", "a bunch of", "a herd of", "a flock of",
               "a lot of", "lots of", "a number of", "multiple", "various", "numerous", "a row of", "a pile of",
               "a stack of", "a couple", "a variety of", "a set of")

MODIFIERS = frozenset((
    "a an the this that these those his her their its my your our another other "
    "white black brown red blue green yellow gray grey pink purple silver gold golden orange dark light "
    "small large big little tiny huge giant tall short long young old baby adult wooden metal plastic "
    "few several some many group bunch herd flock lot lots number multiple various numerous row pile "
    "stack couple variety set pair of both two three four five six seven eight nine ten eleven twelve one"
).split())


def plural(word: str) -> str:
    """Plural of a (possibly multi-word) term: the last word is inflected."""
    head, _, last = word.rpartition(" ")
    if last in IRREGULAR_PLURALS:
        p = IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        p = last + "es"
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        p = last[:-1] + "ies"
    else:
        p = last + "s"
    return f"{head} {p}" if head else p

# how a category is written in a sentence (singular); COCO's own label otherwise
DISPLAY: dict[str, str] = {"tv": "television", "sports ball": "ball", "hair drier": "hair dryer", "skis": "ski",
                           "remote": "remote control"}

# singular surface form of each inclusive concept (the plural comes from INCLUSIVE)
INCLUSIVE_SINGULAR: dict[str, str] = {"animal": "animal", "vehicle": "vehicle", "fruit": "fruit",
                                      "vegetable": "vegetable", "appliance": "appliance", "pet": "pet",
                                      "bag": "bag", "dessert": "dessert", "toy": "toy"}
