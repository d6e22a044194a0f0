"""Generated placeholder pictures for products and stores.

The demo must work offline and most demo products have no photo, so each product gets a
deterministic SVG: a soft background in its category's colour and a simple object shape
picked from its id. Same input, same picture, so browsers can cache them for a long time.
"""

from __future__ import annotations

import hashlib
from xml.sax.saxutils import escape

# Simple object silhouettes on a 200 x 150 canvas, centred at (100, 78). `{ink}` is the
# object's colour and `{paper}` the label's.
SHAPES = (
    # bottle
    '<rect x="90" y="24" width="20" height="11" rx="3" fill="{ink}"/>'
    '<rect x="93" y="34" width="14" height="18" rx="3" fill="{ink}" opacity=".85"/>'
    '<rect x="78" y="50" width="44" height="78" rx="12" fill="{ink}"/>'
    '<rect x="84" y="78" width="32" height="28" rx="4" fill="{paper}" opacity=".9"/>',
    # jar
    '<rect x="68" y="40" width="64" height="16" rx="5" fill="{ink}" opacity=".85"/>'
    '<rect x="64" y="54" width="72" height="72" rx="16" fill="{ink}"/>'
    '<rect x="74" y="76" width="52" height="30" rx="5" fill="{paper}" opacity=".9"/>',
    # box
    '<path d="M58 58 L100 40 L142 58 L100 76 Z" fill="{ink}" opacity=".7"/>'
    '<path d="M58 58 L100 76 L100 126 L58 108 Z" fill="{ink}"/>'
    '<path d="M142 58 L100 76 L100 126 L142 108 Z" fill="{ink}" opacity=".85"/>'
    '<path d="M108 80 L134 69 L134 88 L108 99 Z" fill="{paper}" opacity=".9"/>',
    # tube
    '<rect x="86" y="22" width="28" height="14" rx="4" fill="{ink}" opacity=".85"/>'
    '<path d="M82 36 H118 L126 124 H74 Z" fill="{ink}"/>'
    '<rect x="86" y="64" width="28" height="36" rx="4" fill="{paper}" opacity=".9"/>',
    # shopping bag
    '<path d="M84 56 V46 a16 16 0 0 1 32 0 V56" fill="none" stroke="{ink}" stroke-width="6"/>'
    '<rect x="64" y="54" width="72" height="72" rx="8" fill="{ink}"/>'
    '<circle cx="100" cy="90" r="16" fill="{paper}" opacity=".9"/>',
    # round tin
    '<ellipse cx="100" cy="112" rx="40" ry="14" fill="{ink}"/>'
    '<rect x="60" y="56" width="80" height="56" fill="{ink}"/>'
    '<ellipse cx="100" cy="56" rx="40" ry="14" fill="{ink}" opacity=".7"/>'
    '<rect x="70" y="78" width="60" height="22" rx="4" fill="{paper}" opacity=".9"/>',
)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def hue_for(text: str) -> int:
    """A stable hue (0-359) for a category or store name, so related products look related."""
    return _digest(text) % 360


def initials(text: str, letters: int = 2) -> str:
    words = [w for w in text.replace("&", " ").split() if w[:1].isalnum()]
    return "".join(w[0] for w in words[:letters]).upper() or "?"


def product_svg(key: str, title: str, category: str) -> str:
    """The placeholder picture of one product: its category's colour (varied a little per
    product, so a shelf of one category is not monotone) and an object shape from its key."""
    digest = _digest(key)
    hue = (hue_for(category or title) + (digest >> 8) % 41 - 20) % 360
    shape = SHAPES[digest % len(SHAPES)]
    ink = f"hsl({hue} 45% 42%)"
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 150" role="img" '
        f'aria-label="{escape(title, {chr(34): "&quot;"})}">'
        '<defs><linearGradient id="bg" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="hsl({hue} 60% 95%)"/>'
        f'<stop offset="1" stop-color="hsl({(hue + 25) % 360} 55% 86%)"/>'
        "</linearGradient></defs>"
        '<rect width="200" height="150" fill="url(#bg)"/>'
        f'<circle cx="168" cy="22" r="46" fill="hsl({hue} 60% 99%)" opacity=".45"/>'
        '<ellipse cx="100" cy="132" rx="52" ry="7" fill="#000" opacity=".08"/>'
        + shape.format(ink=ink, paper=f"hsl({hue} 70% 97%)")
        + "</svg>"
    )


def store_svg(name: str) -> str:
    """A store's logo: its initials on a rounded tile in the store's colour."""
    hue = hue_for(name)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 96 96" role="img" '
        f'aria-label="{escape(name, {chr(34): "&quot;"})}">'
        f'<rect width="96" height="96" rx="22" fill="hsl({hue} 48% 40%)"/>'
        f'<circle cx="78" cy="16" r="30" fill="hsl({hue} 60% 60%)" opacity=".35"/>'
        '<text x="48" y="60" text-anchor="middle" font-family="system-ui, sans-serif" '
        f'font-size="34" font-weight="700" fill="#fff">{escape(initials(name))}</text>'
        "</svg>"
    )
