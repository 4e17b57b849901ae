"""Stop words: a short list of very frequent function words per language.

Why: Gopher's "at least 2 stop words" test is a cheap detector of running text -- word salads,
keyword lists, tables and navigation menus contain few or none of a language's function words,
while any real sentence contains several. Lists are deliberately short (the most frequent function
words only): a longer list would make the test easier to pass by chance, and matching is exact and
case-sensitive, as in Gopher and FineWeb.

English keeps the eight words of the Gopher paper (the ones FineWeb English used), so our English
preset reproduces FineWeb. The other lists were written for this project from general knowledge of
each language's most frequent function words.

For zh, ja and th, text is segmented into characters (see `filters.text_stats`), so a stop word
counts when it occurs anywhere in the text (a substring), not as a token.
"""

from __future__ import annotations

from filters.text_stats import normalize_lang

__all__ = ["STOP_WORDS", "get_stop_words"]

STOP_WORDS: dict[str, tuple[str, ...]] = {
    # Gopher (Rae et al. 2021), as used by FineWeb English
    "en": ("the", "be", "to", "of", "and", "that", "have", "with"),
    "pt": (
        "de", "a", "o", "que", "e", "do", "da", "em", "um", "para", "é", "com", "não", "uma",
        "os", "no", "se", "na", "por", "mais", "as", "dos", "como", "mas", "ao", "das",
    ),
    "es": (
        "de", "la", "que", "el", "en", "y", "a", "los", "se", "del", "las", "un", "por", "con",
        "no", "una", "su", "para", "es", "al", "lo", "como", "más",
    ),
    "de": (
        "der", "die", "und", "in", "den", "von", "zu", "das", "mit", "sich", "des", "auf", "für",
        "ist", "im", "dem", "nicht", "ein", "eine", "als", "auch", "es", "an", "aus", "er", "hat",
        "dass", "sie", "nach", "wird", "bei",
    ),
    "fr": (
        "de", "la", "le", "et", "les", "des", "en", "un", "du", "une", "que", "est", "pour", "qui",
        "dans", "par", "plus", "pas", "au", "sur", "ne", "se", "ce", "il", "sont", "l'", "d'",
    ),
    "it": (
        "di", "e", "il", "la", "che", "in", "a", "per", "un", "è", "del", "non", "una", "della",
        "le", "con", "si", "da", "i", "l'", "al", "dei", "nel", "anche", "sono", "più",
    ),
    "ru": (
        "и", "в", "не", "на", "что", "с", "по", "это", "как", "к", "но", "из", "у", "за", "от",
        "о", "для", "же", "так", "все", "он", "она", "а", "бы", "был", "до", "или", "его",
    ),
    # Korean is split on spaces: particles stay attached, so these are free-standing words
    "ko": (
        "수", "것", "있는", "및", "그", "이", "등", "더", "또한", "있다", "위해", "통해", "대한",
        "같은", "그리고", "하는", "있습니다", "할", "한", "때", "이런", "그런", "모든", "많은",
    ),
    "ja": (
        "の", "に", "は", "を", "が", "で", "と", "た", "て", "も", "し", "な", "から", "です",
        "ます", "こと", "する", "ある", "いる",
    ),
    # simplified and traditional forms
    "zh": (
        "的", "了", "在", "是", "和", "有", "也", "就", "都", "而", "及", "与", "與", "这", "這",
        "我", "他", "们", "們", "不", "中", "为", "為", "对", "對", "以", "上", "个", "個", "人",
    ),
    "hi": (
        "के", "में", "है", "की", "और", "से", "का", "को", "एक", "हैं", "पर", "भी", "लिए", "कि",
        "यह", "था", "नहीं", "तो", "ने", "हो", "कर", "वह",
    ),
    "th": (
        "ที่", "และ", "ของ", "ใน", "เป็น", "มี", "การ", "ได้", "ไม่", "ให้", "จะ", "กับ", "ว่า",
        "นี้", "แต่", "ก็", "ความ", "จาก", "โดย", "ไป",
    ),
}  # fmt: skip


def get_stop_words(lang: str | None) -> tuple[str, ...]:
    """The stop words for `lang` (any spelling `normalize_lang` accepts); empty when we have none.

    An empty list means "no stop-word test" to `GopherQualityFilter`, which is the safe default for a
    language nobody has written a list for yet (`filters.presets.derive_preset` can derive one).
    """
    return STOP_WORDS.get(normalize_lang(lang), ())
