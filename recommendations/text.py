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


# Marks that writing mostly leaves out and that never make another word: Hebrew points and
# cantillation (the combining marks among U+0591-U+05C7; not the maqaf, paseq, sof pasuq and
# nun hafukha between them, which are punctuation), Arabic vowel marks (harakat, U+064B-U+065F),
# the superscript alef (U+0670) and the tatweel that stretches letters (U+0640). Migration 0030's
# SQL functions remove the same characters.
UNWRITTEN_MARKS = "".join(
    map(chr, [*range(0x0591, 0x05BE), 0x05BF, 0x05C1, 0x05C2, 0x05C4, 0x05C5, 0x05C7])
) + "".join(map(chr, [0x0640, *range(0x064B, 0x0660), 0x0670]))
_UNWRITTEN = str.maketrans("", "", UNWRITTEN_MARKS)
FINAL_SIGMA, SIGMA = "\u03c2", "\u03c3"
DOTTED_CAPITAL_I = "\u0130"


def without_marks(text: str) -> str:
    """`text` without `UNWRITTEN_MARKS`: "שָׁלוֹם" is "שלום", "كِتَاب" is "كتاب"."""
    return text.translate(_UNWRITTEN)


def fold_category(name: str) -> str:
    """A category name as campaigns compare it, in any case and pointed or not: lower-cased,
    the final sigma as the other one, without `UNWRITTEN_MARKS`. "İ" is "i" first: Python's
    lower() makes it "i" and a combining dot, PostgreSQL's "i" or that, by its locale. Migration
    0030's `recommendations_fold_categories` is the same in SQL, so that either side may fold
    a name the other folded already."""
    return without_marks(name.replace(DOTTED_CAPITAL_I, "i").lower().replace(FINAL_SIGMA, SIGMA))
