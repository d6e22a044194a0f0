"""Text in one form wherever it is kept or compared: names as stored, words as searched.

A shop's text arrives in the many forms Unicode allows for one thing: full-width Latin,
half-width katakana, ligatures (NFKC makes them one), control characters pasted from
spreadsheets or exports (a tab, a line break, the unit separator chr(31)), and vowel marks that
Hebrew and Arabic mostly leave out in writing ("שָׁלוֹם" is "שלום" pointed).
"""

from __future__ import annotations

import re
import unicodedata

# C0 and C1 controls and DEL (Unicode category Cc).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


def clean_name(text: str) -> str:
    """A name (of a product, a store, a category, a brand) as it is stored: NFKC, each control
    character a space, runs of spaces one, trimmed. A name holds no control character, so a
    name joined to others by one (`recommendations_fold_categories` joins by chr(31)) can be
    split again."""
    return " ".join(_CONTROLS.sub(" ", unicodedata.normalize("NFKC", text)).split())
