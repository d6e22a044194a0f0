import subprocess
import sys

import numpy as np

from recommendations.learning.features import (
    ItemContent,
    ItemFeaturizer,
    rfm_user_features,
    stable_hash,
    text_tokens,
)


def test_hash_is_stable_across_processes():
    code = "from recommendations.learning.features import stable_hash; print(stable_hash('x', 'w'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == stable_hash("x", "w")


def test_latin_words_and_ngrams():
    words, ngrams = text_tokens("Nail Polish", (3,))
    assert words == ["nail", "polish"]
    assert "<na" in ngrams and "sh>" in ngrams


def test_cjk_text_gives_ngrams():
    words, ngrams = text_tokens("深层保湿面霜", (3,))
    assert "保湿" in words
    assert "保" in ngrams and "保湿" in ngrams
    # Two related CJK titles share n-gram features even without spaces.
    f = ItemFeaturizer()
    a = {i for i, _ in f.item_tokens(ItemContent(title="保湿面霜"))}
    b = {i for i, _ in f.item_tokens(ItemContent(title="深层保湿乳液"))}
    c = {i for i, _ in f.item_tokens(ItemContent(title="运动鞋"))}
    assert len(a & b) > len(a & c)


def test_combining_marks_stay_inside_their_words():
    """Devanagari, Thai and Arabic write vowels as combining marks (Unicode Mn/Mc), which
    `\\w` does not match: a word must not break into letters at each of them."""
    assert text_tokens("हिन्दी किताब", ())[0] == ["हिन्दी", "किताब"]
    assert text_tokens("ชาเขียว", ())[0] == ["ชาเขียว"]
    words, ngrams = text_tokens("Nail Polish 深层保湿面霜", (3,))  # Latin and CJK as before
    assert words == ["nail", "polish", "深层", "层保", "保湿", "湿面", "面霜"]
    assert "<na" in ngrams and "保" in ngrams


def test_vowelled_and_plain_arabic_are_one_word():
    """Arabic is mostly written without its vowel marks (harakat) and sometimes with them,
    or stretched with a tatweel: all are the same word."""
    plain = text_tokens("قهوة عربية", (3,))
    assert text_tokens("قَهْوَة عَرَبِيَّة", (3,)) == plain == text_tokens("قهــوة عربية", (3,))
    assert plain[0] == ["قهوة", "عربية"]
    f = ItemFeaturizer()
    assert f.item_tokens(ItemContent(title="قهوة", brand="قَهْوَة")) == f.item_tokens(
        ItemContent(title="قَهْوَة", brand="قهوة")
    )


def test_pointed_and_plain_hebrew_are_one_word():
    """Hebrew is mostly written without its points (niqqud) and cantillation: the same word,
    as search reads it (`recommendations.text.without_marks`)."""
    plain = text_tokens("\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd", (3,))  # "שלום עולם"
    pointed = "\u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd \u05e2\u05d5\u05b9\u05dc\u05b8\u05dd"
    assert text_tokens(pointed, (3,)) == plain
    assert plain[0] == ["\u05e9\u05dc\u05d5\u05dd", "\u05e2\u05d5\u05dc\u05dd"]


def test_category_prefixes_brand_and_field_weights():
    f = ItemFeaturizer()
    item = ItemContent(title="red lipstick", category_path=["Beauty", "Makeup", "Lips"], brand="ACME")
    tokens = f.item_tokens(item)
    cat_lo, cat_hi = f.offsets["category"], f.offsets["category"] + f.sizes["category"]
    cats = [(i, w) for i, w in tokens if cat_lo <= i < cat_hi]
    assert len(cats) == 3 and all(abs(w - 1 / 3) < 1e-9 for _, w in cats)
    # The prefix "beauty > makeup" is shared with a sibling category.
    sibling = ItemContent(category_path=["Beauty", "Makeup", "Eyes"])
    shared = {i for i, _ in cats} & {i for i, _ in f.item_tokens(sibling)}
    assert len(shared) == 2
    brand_id = f.offsets["brand"] + stable_hash("acme", "brand") % f.sizes["brand"]
    assert (brand_id, 1.0) in tokens


def test_price_buckets_are_log_quantiles_and_missing_has_its_own():
    items = [ItemContent(price=p) for p in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]]
    f = ItemFeaturizer()
    f.config.n_price_buckets = 5
    f.fit(items)
    buckets = [f.price_bucket(i.price) for i in items]
    assert buckets == sorted(buckets) and buckets[0] == 1 and buckets[-1] == 5
    assert np.bincount(buckets)[1:].tolist() == [2, 2, 2, 2, 2]
    assert f.price_bucket(None) == 0 and f.price_bucket(float("nan")) == 0


def test_age_bucket_and_serialisation_round_trip():
    day = 86_400
    items = [ItemContent(title="a", created_at=0), ItemContent(title="b", created_at=100 * day)]
    f = ItemFeaturizer().fit(items)
    assert f.age_bucket(100 * day) < f.age_bucket(0)
    g = ItemFeaturizer.from_dict(f.to_dict())
    assert np.array_equal(g.transform(items).ids, f.transform(items).ids)


def test_transform_pads_and_masks():
    f = ItemFeaturizer()
    feats = f.fit_transform([ItemContent(title="one two three"), ItemContent()])
    assert feats.ids.shape[0] == 2
    assert feats.mask[0].sum() > feats.mask[1].sum()
    assert (feats.ids[~feats.mask] == 0).all() and feats.ids.max() < feats.n_features


def test_rfm_buckets():
    day = 86_400.0
    now = 1000 * day
    feats = rfm_user_features(
        last_seen=np.array([now - 0.5 * day, now - 400 * day, np.nan]),
        frequency=np.array([50, 1, 0]),
        spend=np.array([1000.0, 5.0, 0.0]),
        now=now,
    )
    assert feats.ids.shape == (3, 3)
    recent, stale, unknown = feats.ids
    assert recent[0] < stale[0]  # recency bucket grows with days since last event
    assert recent[1] > stale[1] and recent[2] > stale[2]
    assert unknown[0] == 1  # column 0 starts at id 1; bucket 0 = unknown
    assert feats.ids.max() < feats.n_features
    # Every column uses its own id range.
    assert len(set(feats.ids[:, 0]) & set(feats.ids[:, 1])) == 0
