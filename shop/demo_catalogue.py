"""The demo shop's catalogue vocabulary: departments, what they sell, brands, prices, seasons.

Plain data, read by `shop.demo_data`. Each subcategory names its product nouns, adjectives,
variants, brands and price range, whether shoppers buy it again (consumables), and when in
the year it sells (a season profile).
"""

from __future__ import annotations

from dataclasses import dataclass

# Relative demand per month (January first).
SEASONS: dict[str, tuple[float, ...]] = {
    "flat": (1.0,) * 12,
    "summer": (0.4, 0.5, 0.8, 1.2, 1.6, 1.9, 2.0, 1.8, 1.2, 0.7, 0.5, 0.5),
    "winter": (1.8, 1.5, 1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.3, 1.8, 2.0),
    "holiday": (0.7, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.9, 1.1, 1.8, 3.0),
    "new_year": (2.2, 1.4, 1.1, 1.0, 1.0, 0.9, 0.8, 0.8, 1.1, 1.0, 0.8, 0.7),
}


@dataclass(frozen=True)
class Subcategory:
    name: str
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    variants: tuple[str, ...]
    brands: tuple[str, ...]
    price: tuple[float, float]
    features: tuple[str, ...]
    season: str = "flat"
    consumable: bool = False


DEPARTMENTS: dict[str, tuple[Subcategory, ...]] = {
    "Electronics": (
        Subcategory(
            "Headphones",
            ("Over-Ear Headphones", "Wireless Earbuds", "Studio Monitor Headphones", "Sport Earphones"),
            ("Noise-Cancelling", "Bluetooth 5.3", "Lightweight", "Hi-Res", "Foldable"),
            ("Midnight Black", "Silver", "Sand", "Navy"),
            ("Auralis", "Sonara", "Bassline"),
            (29, 349),
            ("up to 40 hours of battery", "memory-foam ear cushions", "a built-in microphone for calls"),
        ),
        Subcategory(
            "Speakers",
            ("Portable Speaker", "Smart Speaker", "Soundbar", "Bookshelf Speakers"),
            ("Waterproof", "Compact", "360°", "Wi-Fi", "Stereo"),
            ("Graphite", "Forest Green", "Coral", "White"),
            ("Sonara", "Bassline", "Echoform"),
            (39, 499),
            ("deep, room-filling bass", "multi-room pairing", "IP67 splash protection"),
        ),
        Subcategory(
            "Chargers & Cables",
            ("USB-C Charger", "Power Bank", "Charging Cable", "Wireless Charging Pad"),
            ("65W GaN", "Fast-Charge", "Braided", "Slim", "Dual-Port"),
            ("1 m", "2 m", "10,000 mAh", "20,000 mAh"),
            ("VoltCore", "Circuit House", "Amperly"),
            (9, 79),
            (
                "safe charging for phones and laptops",
                "a travel-friendly size",
                "a tangle-free braided jacket",
            ),
            consumable=True,
        ),
        Subcategory(
            "Smart Home",
            ("Smart Plug", "Video Doorbell", "Smart Bulb Set", "Indoor Camera"),
            ("Wi-Fi", "Voice-Controlled", "Energy-Monitoring", "1080p", "Motion-Sensing"),
            ("2-Pack", "4-Pack", "Single", "Starter Kit"),
            ("Homely", "Circuit House", "Nestwise"),
            (15, 229),
            (
                "compatibility with the major voice assistants",
                "set-up in minutes from the app",
                "schedules and scenes",
            ),
        ),
    ),
    "Kitchen": (
        Subcategory(
            "Cookware",
            ("Cast Iron Skillet", "Non-Stick Frying Pan", "Dutch Oven", "Stainless Saucepan Set"),
            ("Pre-Seasoned", "Induction-Ready", "Enamelled", "Tri-Ply", "Oven-Safe"),
            ("24 cm", "28 cm", "5.5 L", "3-Piece"),
            ("Copper & Clay", "Hearthstone", "Ferro"),
            (25, 289),
            ("even heat from edge to centre", "oven safety up to 260 °C", "a lifetime warranty"),
        ),
        Subcategory(
            "Coffee & Tea Gear",
            ("Pour-Over Kettle", "French Press", "Burr Grinder", "Espresso Machine"),
            ("Gooseneck", "Double-Walled", "Conical", "Barista-Style", "Temperature-Control"),
            ("Matte Black", "Brushed Steel", "Cream", "Copper"),
            ("Bean & Leaf", "Brewhaus", "Morning Ritual"),
            (19, 599),
            ("precise control of every brew", "easy-clean parts", "a compact counter footprint"),
        ),
        Subcategory(
            "Knives",
            ("Chef's Knife", "Santoku Knife", "Paring Knife", "Knife Block Set"),
            ("Damascus Steel", "German Steel", "Hand-Forged", "Full-Tang", "Ultra-Sharp"),
            ('8"', '7"', '3.5"', "6-Piece"),
            ("Ferro", "Kaizen", "Hearthstone"),
            (18, 260),
            ("a razor edge out of the box", "a balanced ergonomic handle", "hardened 58 HRC steel"),
        ),
        Subcategory(
            "Tableware",
            ("Stoneware Dinner Set", "Ceramic Mug Set", "Wine Glasses", "Serving Bowl"),
            ("Hand-Glazed", "Dishwasher-Safe", "Speckled", "Crystal-Clear", "Rustic"),
            ("Set of 4", "Set of 6", "Oatmeal", "Ocean Blue"),
            ("Copper & Clay", "Claywork", "Lumen & Loom"),
            (14, 149),
            ("microwave- and dishwasher-safe stoneware", "hand-finished glazes", "stackable storage"),
            season="holiday",
        ),
    ),
    "Outdoor": (
        Subcategory(
            "Camping",
            ("Dome Tent", "Sleeping Bag", "Camping Stove", "Inflatable Sleeping Pad"),
            ("Ultralight", "3-Season", "Waterproof", "Compact", "Four-Person"),
            ("Olive", "Orange", "Stone Grey", "Sky Blue"),
            ("Trailhead", "Summit Gear", "Wildfern"),
            (24, 399),
            ("a small packed size", "taped seams against the rain", "a five-minute pitch"),
            season="summer",
        ),
        Subcategory(
            "Gardening",
            ("Pruning Shears", "Raised Garden Bed", "Hose Reel", "Gardening Gloves"),
            ("Heavy-Duty", "Ergonomic", "Rust-Proof", "Cedar", "Self-Watering"),
            ("Small", "Large", "Green", "Terracotta"),
            ("Green Thumb", "Wildfern", "Rootwise"),
            (9, 189),
            (
                "build quality for years of daily use",
                "a comfortable grip for long sessions",
                "a weather-resistant finish",
            ),
            season="summer",
        ),
        Subcategory(
            "Cycling",
            ("Bike Helmet", "LED Bike Light Set", "Cycling Jersey", "Mini Pump"),
            ("Aero", "Rechargeable", "Breathable", "Reflective", "Lightweight"),
            ("S/M", "L/XL", "Neon Yellow", "Black"),
            ("Velo", "Summit Gear", "Trailhead"),
            (15, 199),
            ("visibility from 300 m", "USB-C charging", "certified impact protection"),
            season="summer",
        ),
    ),
    "Fashion": (
        Subcategory(
            "Jackets & Coats",
            ("Down Jacket", "Rain Jacket", "Wool Overcoat", "Fleece Jacket"),
            ("Insulated", "Packable", "Water-Repellent", "Tailored", "Recycled"),
            ("Black", "Camel", "Navy", "Forest"),
            ("Alpine Knit", "Urban Thread", "Northline"),
            (49, 349),
            ("warmth without the bulk", "sealed zips and an adjustable hood", "responsibly sourced down"),
            season="winter",
        ),
        Subcategory(
            "Knitwear",
            ("Merino Sweater", "Cable-Knit Cardigan", "Wool Beanie", "Cashmere Scarf"),
            ("Chunky", "Fine-Gauge", "Organic", "Oversized", "Classic"),
            ("Oatmeal", "Charcoal", "Burgundy", "Moss"),
            ("Alpine Knit", "Northline", "Urban Thread"),
            (19, 189),
            ("soft, itch-free merino", "a relaxed everyday fit", "small-batch knitting"),
            season="winter",
        ),
        Subcategory(
            "Sneakers",
            ("Everyday Sneakers", "Running Shoes", "High-Top Sneakers", "Slip-On Shoes"),
            ("Cushioned", "Vegan Leather", "Breathable", "Retro", "Lightweight"),
            ("White", "Black", "Grey", "Sand"),
            ("Urban Thread", "Stride", "Peak Performance"),
            (45, 179),
            ("all-day cushioning", "a grippy rubber outsole", "a sock-like knit upper"),
        ),
    ),
    "Beauty": (
        Subcategory(
            "Skin Care",
            ("Vitamin C Serum", "Daily Moisturiser", "Gentle Cleanser", "Mineral Sunscreen SPF 50"),
            ("Fragrance-Free", "Hydrating", "Brightening", "Dermatologist-Tested", "Vegan"),
            ("30 ml", "50 ml", "150 ml", "Travel Size"),
            ("Glow Apothecary", "Purelea", "Dermaleaf"),
            (8, 68),
            ("a formula for sensitive skin", "quick absorption with no residue", "a paraben-free formula"),
            consumable=True,
        ),
        Subcategory(
            "Hair Care",
            ("Repair Shampoo", "Leave-In Conditioner", "Hair Oil", "Styling Cream"),
            ("Sulphate-Free", "Nourishing", "Curl-Defining", "Volumising", "Argan"),
            ("250 ml", "500 ml", "100 ml", "Refill"),
            ("Glow Apothecary", "Mane Theory", "Purelea"),
            (7, 42),
            ("salon results at home", "a light botanical scent", "colour-safe formula"),
            consumable=True,
        ),
        Subcategory(
            "Fragrance",
            ("Eau de Parfum", "Scented Candle", "Body Mist", "Perfume Gift Set"),
            ("Woody", "Citrus", "Floral", "Amber", "Fresh"),
            ("50 ml", "100 ml", "Gift Box", "Travel Spray"),
            ("Maison Lune", "Glow Apothecary", "Ember & Oak"),
            (18, 160),
            ("long-lasting sillage", "small-batch hand-pouring", "a beautiful gift box"),
            season="holiday",
        ),
    ),
    "Home": (
        Subcategory(
            "Bedding",
            ("Linen Duvet Cover", "Cotton Sheet Set", "Weighted Blanket", "Memory Foam Pillow"),
            ("Stonewashed", "Organic", "Cooling", "Percale", "Hypoallergenic"),
            ("Double", "King", "Sage", "Cloud White"),
            ("Lumen & Loom", "Slumberly", "Nordnest"),
            (25, 240),
            (
                "fabric that gets softer with every wash",
                "breathability for warm nights",
                "OEKO-TEX certification",
            ),
            season="winter",
        ),
        Subcategory(
            "Lighting",
            ("Floor Lamp", "Desk Lamp", "Pendant Light", "String Lights"),
            ("Dimmable", "Rattan", "Industrial", "LED", "Minimalist"),
            ("Brass", "Matte Black", "Natural", "White"),
            ("Lumen & Loom", "Nordnest", "Homely"),
            (19, 259),
            ("warm, flicker-free light", "energy-saving LED", "tool-free assembly"),
            season="holiday",
        ),
        Subcategory(
            "Decor",
            ("Ceramic Vase", "Wall Mirror", "Throw Pillow", "Woven Basket"),
            ("Handmade", "Boho", "Scandinavian", "Textured", "Vintage"),
            ("Small", "Large", "Terracotta", "Ivory"),
            ("Lumen & Loom", "Claywork", "Nordnest"),
            (12, 180),
            ("warmth for any room", "a unique handmade finish", "ethical sourcing"),
            season="holiday",
        ),
    ),
    "Toys & Games": (
        Subcategory(
            "Board Games",
            ("Strategy Board Game", "Party Card Game", "Cooperative Adventure Game", "Family Trivia Game"),
            ("Award-Winning", "Quick-Play", "Expansion-Ready", "Classic", "Legacy"),
            ("2-4 Players", "3-6 Players", "Ages 8+", "Ages 12+"),
            ("Playful Minds", "Meeple Works", "Dicebox"),
            (12, 89),
            (
                "a playing time of about 45 minutes",
                "rules that are easy to learn, hard to master",
                "beautiful illustrations",
            ),
            season="holiday",
        ),
        Subcategory(
            "Building Sets",
            ("Space Station Building Set", "City Train Set", "Robot Kit", "Castle Building Set"),
            ("Motorised", "Creative", "Programmable", "Deluxe", "Starter"),
            ("450 Pieces", "900 Pieces", "1,500 Pieces", "Ages 6+"),
            ("Brickyard", "Playful Minds", "Tinkerlab"),
            (19, 199),
            (
                "hours of hands-on building",
                "compatibility with major brick systems",
                "step-by-step instructions",
            ),
            season="holiday",
        ),
        Subcategory(
            "Puzzles",
            ("Jigsaw Puzzle", "3D Wooden Puzzle", "Brain Teaser Set", "Floor Puzzle"),
            ("1000-Piece", "Challenging", "Eco-Friendly", "Illustrated", "Kids'"),
            ("Landscape", "Map of the World", "Botanical", "Animals"),
            ("Playful Minds", "Dicebox", "Tinkerlab"),
            (9, 59),
            ("thick, snug-fitting pieces", "plant-based inks", "a poster of the finished image"),
            season="winter",
        ),
    ),
    "Sports & Fitness": (
        Subcategory(
            "Yoga",
            ("Yoga Mat", "Yoga Block Set", "Meditation Cushion", "Resistance Band Set"),
            ("Non-Slip", "Eco", "Extra-Thick", "Cork", "Travel"),
            ("4 mm", "6 mm", "Lavender", "Slate"),
            ("Peak Performance", "Zenflow", "Stride"),
            (12, 110),
            ("grip that holds in hot classes", "a PVC- and latex-free build", "a carrying strap"),
            season="new_year",
        ),
        Subcategory(
            "Running",
            ("Running Belt", "Hydration Vest", "Running Socks 3-Pack", "GPS Sports Watch"),
            ("Bounce-Free", "Lightweight", "Moisture-Wicking", "Reflective", "Long-Battery"),
            ("S", "M", "L", "One Size"),
            ("Stride", "Peak Performance", "Velo"),
            (9, 299),
            ("a fit that stays put at any pace", "fast-drying fabric", "race-day durability"),
            season="new_year",
        ),
        Subcategory(
            "Weights",
            ("Adjustable Dumbbells", "Kettlebell", "Weight Plate Set", "Pull-Up Bar"),
            ("Cast Iron", "Space-Saving", "Rubber-Coated", "Quick-Adjust", "Doorway"),
            ("8 kg", "12 kg", "16 kg", "24 kg"),
            ("Peak Performance", "IronForge", "Zenflow"),
            (19, 349),
            ("a secure grip when sweaty", "floor-friendly coating", "the range of a whole rack of weights"),
            season="new_year",
        ),
    ),
    "Pantry": (
        Subcategory(
            "Coffee",
            ("Whole Bean Coffee", "Ground Coffee", "Cold Brew Concentrate", "Espresso Capsules"),
            ("Single-Origin", "Dark Roast", "Medium Roast", "Decaf", "Organic"),
            ("250 g", "500 g", "1 kg", "Pack of 30"),
            ("Bean & Leaf", "Roastery 9", "Morning Ritual"),
            (7, 39),
            ("beans roasted to order", "tasting notes of chocolate and cherry", "direct-trade beans"),
            consumable=True,
        ),
        Subcategory(
            "Tea",
            ("Loose Leaf Green Tea", "Earl Grey Tea Bags", "Herbal Infusion", "Matcha Powder"),
            ("Organic", "First Flush", "Caffeine-Free", "Ceremonial-Grade", "Smoky"),
            ("50 g", "100 g", "Tin", "40 Bags"),
            ("Bean & Leaf", "Leafwise", "Morning Ritual"),
            (5, 36),
            ("hand-picked leaves", "resealable packaging", "a clean, bright cup"),
            season="winter",
            consumable=True,
        ),
        Subcategory(
            "Snacks",
            ("Dark Chocolate Bar", "Trail Mix", "Granola", "Salted Caramel Popcorn"),
            ("70% Cocoa", "Roasted", "High-Protein", "Gluten-Free", "Small-Batch"),
            ("100 g", "250 g", "Pack of 6", "Sharing Bag"),
            ("Leafwise", "Nibble & Co", "Roastery 9"),
            (3, 24),
            ("nothing artificial", "a size made for the trail or desk", "a resealable pouch"),
            consumable=True,
        ),
    ),
}

# The marketplace's sellers: (name, specialities as subcategory names, one-line pitch).
STORES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Northwind Audio", ("Headphones", "Speakers"), "Sound gear tested by people who mix records."),
    (
        "Circuit House",
        ("Chargers & Cables", "Smart Home"),
        "Everything that plugs in, charges up or talks back.",
    ),
    ("Copper & Clay Kitchen", ("Cookware", "Knives", "Tableware"), "Tools for people who cook every day."),
    (
        "Bean & Leaf Roasters",
        ("Coffee", "Tea", "Coffee & Tea Gear"),
        "Small-batch roasts and the gear to brew them.",
    ),
    ("Trailhead Outfitters", ("Camping", "Cycling"), "Gear for weekends outside."),
    ("Green Thumb Garden Co.", ("Gardening",), "Tools and beds for growers of every size."),
    ("Urban Thread", ("Sneakers", "Jackets & Coats"), "City clothing that lasts."),
    ("Alpine Knit", ("Knitwear", "Jackets & Coats"), "Merino and down for the cold months."),
    ("Glow Apothecary", ("Skin Care", "Hair Care", "Fragrance"), "Clean beauty, mixed in small batches."),
    ("Lumen & Loom", ("Lighting", "Bedding", "Decor"), "A calmer home, one room at a time."),
    ("Playful Minds", ("Board Games", "Building Sets", "Puzzles"), "Games and toys that make people think."),
    ("Peak Performance", ("Yoga", "Running", "Weights"), "Fitness kit for home and the road."),
    ("Nibble & Co", ("Snacks", "Tea"), "Honest snacks for desks and trails."),
)

FIRST_NAMES = (
    "maya",
    "liam",
    "sofia",
    "noah",
    "amara",
    "lucas",
    "zoe",
    "ethan",
    "ines",
    "oscar",
    "hana",
    "leo",
    "priya",
    "mateo",
    "chloe",
    "ravi",
    "elena",
    "omar",
    "freya",
    "kai",
    "nora",
    "jonas",
    "aisha",
    "theo",
)
LAST_NAMES = (
    "lopez",
    "kim",
    "patel",
    "nguyen",
    "garcia",
    "smith",
    "muller",
    "rossi",
    "okafor",
    "silva",
    "novak",
    "tanaka",
    "berg",
    "haddad",
    "costa",
    "walsh",
    "ibrahim",
    "jensen",
    "moreau",
    "singh",
)
REVIEW_TEXT = {
    1: ("Broke after a week.", "Not as described, returning it.", "Disappointing quality."),
    2: ("Does the job, barely.", "Expected more for the price.", "Okay-ish, some flaws."),
    3: ("Decent for the money.", "Fine, nothing special.", "Works as expected."),
    4: ("Really good, would buy again.", "Great value, small niggles.", "Very happy with it."),
    5: ("Absolutely love it!", "Best purchase this year.", "Perfect, exactly what I wanted."),
}
USER_AGENTS = (
    (
        "desktop",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0 Safari/537.36",
    ),
    (
        "desktop",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Safari/605.1.15",
    ),
    (
        "mobile",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148",
    ),
    (
        "mobile",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0 Mobile Safari/537.36",
    ),
)
BOT_USER_AGENT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
