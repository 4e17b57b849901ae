"""Language-aware segmentation and per-document statistics shared by every rule.

Why this module exists: the quality rules (Gopher, C4, FineWeb) all look at the same few views of a
document -- its words, lines, paragraphs and word n-grams. Computing them once per document in a
`TextStats` object, lazily, lets several rules share the work, and keeps the rules themselves tiny.

Segmentation is written to reproduce what datatrove (and so FineWeb / FineWeb2) measured, because
their thresholds were tuned on those measurements:

* Languages written with spaces (en, pt, es, de, fr, it, ru, ko, hi, ...) follow the splitting
  rules of spaCy's rule-based tokenizer, which datatrove uses: split on whitespace, peel prefix and
  suffix punctuation off each chunk (``"(word),"`` -> ``( word ) ,``), split a few infixes
  (``well-known`` -> ``well - known`` in English), keep URLs and a short list of abbreviations whole,
  and split English contractions (``don't`` -> ``do n't``). It is a re-implementation with plain
  ``re`` and ``str`` methods, not a dependency on spaCy, and it agrees with spaCy on ordinary prose;
  it can differ on rare constructions, which only matters for documents sitting on a threshold.
* Languages written without spaces (zh, ja, th, lo, km, my, bo) are split into characters -- more
  exactly into grapheme clusters: a base character plus the combining marks that follow it, so a Thai
  syllable such as ``ที่`` stays one unit. Runs of Latin letters or digits inside such text are split
  as above. No dictionary or model is needed, nothing is downloaded. Thresholds for these languages
  are stated in characters (see ``filters/data/presets``), and n-gram character lengths do not count the
  artificial spaces between characters.

A different segmenter (pythainlp, jieba, spaCy, ...) can be plugged in per language with
`register_word_splitter`, without touching the rules.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property

import numpy as np

__all__ = [
    "NO_SPACE_LANGS",
    "PUNCTUATION",
    "TERMINAL_PUNCTUATION",
    "TextStats",
    "count_sentences",
    "find_duplicates",
    "is_no_space_lang",
    "normalize_lang",
    "register_word_splitter",
    "split_lines",
    "split_paragraphs",
    "split_words",
    "word_ngrams",
]

# --------------------------------------------------------------------------------------------------
# Languages
# --------------------------------------------------------------------------------------------------

#: ISO 639-3 (and a few macro-language) codes of the languages we ship presets for, to ISO 639-1.
_ISO3_TO_1 = {
    "eng": "en", "por": "pt", "spa": "es", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr",
    "ita": "it", "rus": "ru", "kor": "ko", "jpn": "ja", "zho": "zh", "chi": "zh", "cmn": "zh",
    "yue": "zh", "hin": "hi", "tha": "th", "lao": "lo", "khm": "km", "mya": "my", "bur": "my",
    "bod": "bo", "tib": "bo", "cat": "ca", "nld": "nl", "dut": "nl", "pol": "pl", "tur": "tr",
    "ukr": "uk", "vie": "vi", "ind": "id", "ara": "ar", "swe": "sv",
}  # fmt: skip

#: Languages whose script does not separate words with spaces: we split them into characters.
NO_SPACE_LANGS = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo"})


def normalize_lang(lang: str | None) -> str:
    """Map ``"pt"``, ``"pt-BR"``, ``"por"``, ``"por_Latn"`` ... to one short code (``"pt"``).

    Why: language ID models and configs spell languages differently (fastText ``pt``, GlotLID
    ``por_Latn``, BCP-47 ``pt-BR``); presets and segmentation rules are keyed by the short code.
    ``None`` or an empty string gives ``"xx"`` (unknown; generic rules).
    """
    if not lang:
        return "xx"
    base = re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]
    return _ISO3_TO_1.get(base, base)


def is_no_space_lang(lang: str | None) -> bool:
    """True for languages we segment into characters (see module docstring)."""
    return normalize_lang(lang) in NO_SPACE_LANGS


# --------------------------------------------------------------------------------------------------
# Character classes
# --------------------------------------------------------------------------------------------------

# Unicode's Sentence_Terminal property (Unicode 16), as code point ranges, plus three Khmer signs that
# end sentences in practice. It decides what "ends with terminal punctuation" means for a line.
_STERM_RANGES = (
    0x21, 0x2E, 0x3F, 0x589, (0x61D, 0x61F), 0x6D4, (0x700, 0x702), 0x7F9, 0x837, 0x839,
    (0x83D, 0x83E), (0x964, 0x965), (0x104A, 0x104B), 0x1362, (0x1367, 0x1368), 0x166E,
    (0x1735, 0x1736), (0x17D4, 0x17D6), (0x17D9, 0x17DA), 0x1803, 0x1809, (0x1944, 0x1945),
    (0x1AA8, 0x1AAB), (0x1B4E, 0x1B4F), (0x1B5A, 0x1B5B), (0x1B5E, 0x1B5F), (0x1B7D, 0x1B7F),
    (0x1C3B, 0x1C3C), (0x1C7E, 0x1C7F), 0x2024, (0x203C, 0x203D), (0x2047, 0x2049),
    (0x2CF9, 0x2CFB), 0x2E2E, 0x2E3C, (0x2E53, 0x2E54), (0x2E60, 0x2E61), 0x3002, 0xA4FF,
    (0xA60E, 0xA60F), 0xA6F3, 0xA6F7, (0xA876, 0xA877), (0xA8CE, 0xA8CF), 0xA92F, (0xA9C8, 0xA9C9),
    (0xAA5D, 0xAA5F), (0xAAF0, 0xAAF1), 0xABEB, 0xFE12, (0xFE15, 0xFE16), 0xFE52, (0xFE56, 0xFE57),
    0xFF01, 0xFF0E, 0xFF1F, 0xFF61, (0x10A56, 0x10A57), (0x10F55, 0x10F59), (0x10F86, 0x10F89),
    (0x11047, 0x11048), (0x110BE, 0x110C1), (0x11141, 0x11143), (0x111C5, 0x111C6), 0x111CD,
    (0x111DE, 0x111DF), (0x11238, 0x11239), (0x1123B, 0x1123C), 0x112A9, (0x113D4, 0x113D5),
    (0x1144B, 0x1144C), (0x115C2, 0x115C3), (0x115C9, 0x115D7), (0x11641, 0x11642),
    (0x1173C, 0x1173E), 0x11944, 0x11946, (0x11A42, 0x11A43), (0x11A9B, 0x11A9C),
    (0x11C41, 0x11C42), (0x11EF7, 0x11EF8), (0x11F43, 0x11F44), (0x16A6E, 0x16A6F), 0x16AF5,
    (0x16B37, 0x16B38), 0x16B44, (0x16D6E, 0x16D6F), 0x16E98, 0x1BC9F, 0x1DA88,
)  # fmt: skip


def _w(words: str) -> list[str]:
    """Whitespace-separated word list (keeps long lists of short strings readable)."""
    return words.split()


def _expand(ranges: Iterable[int | tuple[int, int]]) -> str:
    out = []
    for item in ranges:
        lo, hi = item if isinstance(item, tuple) else (item, item)
        out.extend(chr(c) for c in range(lo, hi + 1))
    return "".join(out)


#: Characters that end a sentence in some script ("." "!" "?" "。" "।" "؟" ...).
TERMINAL_PUNCTUATION: frozenset[str] = frozenset(_expand(_STERM_RANGES))
_TERMINAL_TUPLE = tuple(sorted(TERMINAL_PUNCTUATION))

# The characters a token may consist of and still be a "symbol" rather than a word. This is the set
# FineWeb's Gopher thresholds were measured with: ASCII punctuation, control characters (not tab or
# newline), common typographic and CJK punctuation, sentence terminals. Note what it leaves out on
# purpose, as FineWeb did: bullets ("•"), "‘", "©", "°", currency other than "$": a token made of
# those counts as a word.
_CONTROL = _expand([(0, 8), (11, 12), (13, 31), (127, 159)])
_TYPOGRAPHIC = "—–“”„’´«»…►━∶"
_CJK_PUNCT = "、。「」【】《》〈〉，；：！？（）～％．１"
#: Characters that make a token a symbol (see comment above).
PUNCTUATION: frozenset[str] = frozenset(string.punctuation + _CONTROL + _TYPOGRAPHIC + _CJK_PUNCT) | (
    TERMINAL_PUNCTUATION
)

# --------------------------------------------------------------------------------------------------
# Tokenizer for languages written with spaces (spaCy-compatible rules, see module docstring)
# --------------------------------------------------------------------------------------------------

_DIGITS = "0123456789"
_QUOTES = frozenset("'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧")
_PUNCT_SINGLE = frozenset(",:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪…")
_CURRENCY = frozenset("$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿")
# Single characters peeled off the front / back of a chunk.
_PREFIX_CHARS = frozenset("§%=—–") | _PUNCT_SINGLE | _QUOTES | _CURRENCY
_SUFFIX_CHARS = frozenset("—–") | _PUNCT_SINGLE | _QUOTES
# "." is a suffix after these (besides lower-case letters and, in most languages, digits).
_PERIOD_AFTER = frozenset("%²-+|\\") | _PUNCT_SINGLE | _QUOTES
_UNITS = frozenset(
    _w(
        "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s "
        "km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см "
        "см² см³ мм мм² мм³ нм кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тб"
    )
)
_MAX_UNIT = max(map(len, _UNITS))
_HYPHENS = ("-", "–", "—", "--", "---", "——", "~")
_ELISION = "'’"

# URLs and e-mail addresses stay one token. Bounded quantifiers keep matching linear.
_URL_CHAR = r"[A-Za-z0-9\u00a1-\uffff]"
_URL_RE = re.compile(
    r"(?:[\w+\-.]{2,32}://)?"  # scheme
    r"(?:\S{1,256}@)?"  # user info / e-mail local part
    rf"(?:(?:{_URL_CHAR}[A-Za-z0-9\u00a1-\uffff_-]{{0,62}})?{_URL_CHAR}\.){{1,32}}"  # host labels
    r"(?P<tld>[^\W\d_]{2,63})"  # top-level domain (lower case, checked below)
    r"(?::\d{2,5})?"  # port
    r"(?:[/?#]\S*)?"  # path
)


def _is_url(s: str) -> bool:
    if "." not in s or len(s) > 1024:
        return False
    m = _URL_RE.fullmatch(s)
    return bool(m) and m.group("tld").islower()


def _case_variants(word: str) -> set[str]:
    return {word, word[:1].upper() + word[1:]}


def _english_specials() -> dict[str, tuple[str, ...]]:
    """English chunks that split (or don't) in a fixed way, as in spaCy's English exceptions.

    Contractions split before the clitic (``don't`` -> ``do n't``; ``I'm`` -> ``I 'm``); a few
    abbreviations keep their period (``e.g.``, ``Mr.``). Written from the rules, not copied.
    """
    sp: dict[str, tuple[str, ...]] = {}
    negatable = _w("do does did is are was were has have had could would should might must need ca wo ai sha")
    for base in negatable:
        for apo in ("'", "’", ""):
            for b in _case_variants(base):
                sp[f"{b}n{apo}t"] = (b, f"n{apo}t")
    # which clitics each pronoun takes ("I'm", "you're", "he's", "who'd've" ...)
    clitics = {
        "i": "m d ll ve", "you": "ll d ve re", "he": "ll d s", "she": "ll d s", "it": "ll d s",
        "we": "ll d ve re", "they": "ll d ve re", "that": "ll d s", "this": "ll d s",
        "these": "ll d ve re", "those": "ll d ve re",
    }  # fmt: skip
    for wh in _w("who what when where why how there"):
        clitics[wh] = "ll d ve re s"
    # apostrophe-less spellings that are real words stay whole ("ill", "well", "its" ...)
    real_words = {"ill", "hell", "shell", "shed", "well", "were", "its", "whore", "wes", "theses"}
    for base, cls in clitics.items():
        variants = _case_variants(base) | ({"I"} if base == "i" else set())
        for b in variants:
            for c in cls.split():
                combos = [(c,)] + ([(c, "ve")] if c in ("ll", "d") else [])
                for combo in combos:
                    for apo in ("'", "’", ""):
                        key = b + "".join(apo + part for part in combo)
                        if apo == "" and key.lower() in real_words:
                            continue
                        sp[key] = (b, *(apo + part for part in combo))
    # apostrophe-less forms that are unambiguous
    for form, parts in {
        "cannot": ("can", "not"), "Cannot": ("Can", "not"), "gonna": ("gon", "na"),
        "Gonna": ("Gon", "na"), "gotta": ("got", "ta"), "Gotta": ("Got", "ta"),
    }.items():  # fmt: skip
        sp[form] = parts
    keep_whole = _w(
        "'em 'bout 'cause 'cos 'nuff 'll 're 'd 's 'S ’em ’bout ’cause ’ll ’re ’d ’s ’S o'clock "
        "ma'am y'know and/or w/o C++ e.g. i.e. E.g. I.e. a.m. p.m. vs. v.s. co. Ph.D. Mr. Mrs. Ms. "
        "Dr. Prof. St. Jr. Mt. Rev. Gen. Gov. Rep. Sen. Adm. Bros. Co. Corp. Inc. Ltd. Messrs. "
        "Jan. Feb. Mar. Apr. Jun. Jul. Aug. Sep. Sept. Oct. Nov. Dec. D.C. N.Y. N.J. N.C. N.D. "
        "N.H. N.M. S.C. Ala. Ariz. Ark. Calif. Colo. Conn. Del. Fla. Ga. Ill. Ind. Kan. Ky. La. "
        "Mass. Md. Mich. Minn. Miss. Mo. Mont. Neb. Nev. Okla. Ore. Pa. Tenn. Va. Wash. Wis. "
        "ä. ö. ü."
    )
    for w in keep_whole:
        sp[w] = (w,)
    return sp


# Emoticons and doubled quotes are one token even when glued to a word ("ok:)", "(below):").
_EMOTICONS = frozenset(
    _w(
        ":) :( :-) :-( ;) ;-) (: ): (; (-: )-: :)) :(( :))) :((( :-)) :-(( :D :-D ;D =D 8) 8-) :P :-P "
        ":p :-p :/ :-/ :| :-| :* :-* :] :[ [: :} :-] :o :O :-o :-O :0 :x :X :-x :-X :3 :> :'( :') "
        "=) =( =/ =| =] =[ ]= [= (= <3 </3 <33 ^_^ ^^ -_- o.O O.o o_O O_o xD XD >.< '' ’’ "
        "'d 'll 're 've 'm 'em ’d ’ll ’re ’ve ’m ’em"
    )
)


def _abbreviations(words: str) -> dict[str, tuple[str, ...]]:
    return {w: (w,) for w in _w(words)}


class _LangRules:
    """The few switches on which spaCy's tokenizers for our languages differ."""

    __slots__ = (
        "caseless_period",
        "digit_period",
        "elision",
        "extra_suffixes",
        "german_infixes",
        "hyphen_infix",
        "hyphen_suffixes",
        "possessive",
        "specials",
        "units",
    )

    def __init__(
        self,
        *,
        hyphen_infix: str | None = "alpha",
        digit_period: bool = True,
        possessive: bool = True,
        elision: bool = False,
        hyphen_suffixes: frozenset[str] = frozenset(),
        percent_unit: bool = True,
        german_infixes: bool = False,
        extra_suffixes: str = "",
        caseless_period: bool = False,
        specials: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.hyphen_infix = hyphen_infix  # "alpha": between letters/digits and a letter; "lower"; None
        self.digit_period = digit_period  # split "." after a digit ("2020." -> 2020 .)
        self.possessive = possessive  # split "'s" suffix
        self.elision = elision  # split after an apostrophe between letters (l'homme -> l' homme)
        self.hyphen_suffixes = hyphen_suffixes  # French "dit-il" -> dit -il
        self.units = _UNITS if percent_unit else _UNITS - {"%"}
        self.german_infixes = german_infixes  # spaCy's German infix set (see _infix_width)
        self.extra_suffixes = frozenset(extra_suffixes)  # German also splits a final "/"
        # split "." after letters of scripts without case (Hangul, Devanagari, Arabic ...); spaCy's
        # rule only knows lower case, which would leave Korean "있다." as one word
        self.caseless_period = caseless_period
        self.specials = {e: (e,) for e in _EMOTICONS if e[0] not in "'’"} | (specials or {})


# Abbreviations that keep their period, per language (the most common ones only).
_BASE_SPECIALS = _abbreviations(" ".join(f"{c}." for c in string.ascii_lowercase) + " ä. ö. ü. C++")
_RULES: dict[str, _LangRules] = {
    "en": _LangRules(specials=_BASE_SPECIALS | _english_specials()),
    "pt": _LangRules(
        hyphen_infix=None,
        specials=_BASE_SPECIALS
        | _abbreviations(
            "Sr. Sra. Srs. Dr. Dra. Prof. Av. Cia. Jr. Inc. Ltd. Mr. Ph.D. Art. art. av. pág. pag. tel. "
            "ed. etc. e.g. i.e. E.g. I.e. vs. p.m."
        ),
    ),
    "es": _LangRules(
        hyphen_infix=None,
        possessive=False,
        percent_unit=False,
        specials=_BASE_SPECIALS
        | _abbreviations(
            "Sr. Sra. Srta. Dr. Dra. Prof. Profa. Ud. Uds. Vd. Av. Avda. Lic. Ing. EE.UU. S.A. S.L. "
            "a.C. d.C. etc. p.ej. aprox. núm. pág. vol. fig. ej."
        ),
    ),
    "de": _LangRules(
        hyphen_infix=None,
        digit_period=False,
        possessive=False,
        german_infixes=True,
        extra_suffixes="/",
        specials=_BASE_SPECIALS
        | _abbreviations(
            "z.B. d.h. u.a. bzw. usw. ca. Nr. Str. Dr. Prof. vgl. ggf. evtl. etc. e.V. inkl. max. min. "
            "Mio. Mrd. Jh. Tel. St. Co. Inc. Mr. u.s.w. z.T. s.o. o.a. i.d.R. U.S. U.S.A. Jan. Feb. "
            "Apr. Aug. Sep. Sept. Okt. Nov. Dez. I. II. III. IV. e.g. i.e. vs."
        ),
    ),
    "fr": _LangRules(
        hyphen_infix=None,
        possessive=False,
        elision=True,
        hyphen_suffixes=frozenset(
            f"{h}{w}" for h in "-–" for w in _w("ce elle elles en il ils je là moi nous on t toi vous")
        ),
        specials=_BASE_SPECIALS
        | _abbreviations(
            "M. MM. Mme. Mlle. Dr. Mr. St. Ste. No. Vol. etc. cf. pp. apr. av. avr. janv. févr. "
            "juill. sept. oct. nov. déc. J.-C. aujourd'hui Aujourd'hui aujourd’hui Aujourd’hui"
        ),
    ),
    "it": _LangRules(
        hyphen_infix="lower",
        elision=True,
        specials=_BASE_SPECIALS
        | _abbreviations("po' Po' Art. art. artt. ecc. etc. pag. prof. tel. sett. ss. al. a.C. d.C. St. Jr."),
    ),
    "ru": _LangRules(
        specials=_BASE_SPECIALS
        | _abbreviations(
            "т.е. т.д. т.п. г. гг. др. им. ул. см. д. в. вв. стр. рис. тыс. млн. млрд. руб. коп."
        ),
    ),
}
_DEFAULT_RULES = _LangRules(caseless_period=True, specials=_BASE_SPECIALS)

# Plug-in segmenters registered by users, keyed by normalized language.
_CUSTOM_SPLITTERS: dict[str, Callable[[str], list[str]]] = {}


def register_word_splitter(lang: str, splitter: Callable[[str], list[str]] | None) -> None:
    """Use ``splitter(text) -> list[str]`` for `lang` instead of the built-in rules (None restores).

    Why: a project that has pythainlp, jieba or spaCy models can trade speed for linguistically
    better words without touching any rule; presets derived with `derive_preset` then follow suit.
    The splitter must return non-empty tokens without surrounding whitespace.
    """
    key = normalize_lang(lang)
    if splitter is None:
        _CUSTOM_SPLITTERS.pop(key, None)
    else:
        _CUSTOM_SPLITTERS[key] = splitter


def _is_icon(c: str) -> bool:
    # "Symbol, other": emoji, arrows, box drawing, ©, ° ... split off like punctuation.
    return c > "\x7f" and unicodedata.category(c) == "So"


def _prefix_len(s: str) -> int:
    c = s[0]
    if c == ".":
        if s.startswith(".."):
            n = 2
            while n < len(s) and s[n] == ".":
                n += 1
            return n
        return 0
    if c == "+":
        return 1 if len(s) == 1 or s[1] not in _DIGITS else 0
    if c in _PREFIX_CHARS:
        return 1
    if c in "UCA" and s.startswith(("US$", "C$", "A$")):
        return 3 if c == "U" else 2
    if _is_icon(c):
        return 1
    return 0


def _suffix_len(s: str, rules: _LangRules) -> int:
    """Length of the longest suffix spaCy would split off (its leftmost matching suffix rule)."""
    n = len(s)
    if n == 0:
        return 0
    best = 0
    c = s[-1]
    if c == ".":
        if n >= 2 and s[-2] == ".":
            k = 2
            while k < n and s[-k - 1] == ".":
                k += 1
            return k
        if n >= 2:
            p = s[-2]
            if (
                p.islower()
                or (rules.digit_period and p in _DIGITS)
                or (
                    rules.caseless_period
                    and not p.isupper()
                    and (p.isalpha() or unicodedata.category(p)[0] == "M")
                )
                or p in _PERIOD_AFTER
                or (n >= 3 and p.isupper() and s[-3].isupper())
                or (n >= 3 and p in "FfCcKk" and s[-3] == "°")
            ):
                best = 1
    elif c in _SUFFIX_CHARS or c in rules.extra_suffixes or _is_icon(c):
        best = 1
        if c == "…" and n >= 2 and s[-2] == "…":
            best = 2
    elif c == "+" and n >= 2 and s[-2] in _DIGITS:
        best = 1
    if rules.possessive and n >= 2 and c in "sS" and s[-2] in "'’":
        best = max(best, 2)
    if rules.hyphen_suffixes and n >= 3:
        cut = max(s.rfind("-"), s.rfind("–"))
        if cut > 0 and s[cut - 1].isalpha() and s[cut:] in rules.hyphen_suffixes:
            best = max(best, n - cut)
    # a unit or a currency right after a digit: "10km" -> 10 km, "5$" -> 5 $
    if n >= 2:
        for k in range(min(_MAX_UNIT, n - 1), 0, -1):
            if s[-k - 1] in _DIGITS and (s[-k:] in rules.units or (k == 1 and c in _CURRENCY)):
                best = max(best, k)
                break
    return best


_INFIX_TRIGGER = re.compile(r"[.…+\-*^,:<>=/–—~'’]|[^\x00-\x7f]")


def _infix_width(s: str, i: int, rules: _LangRules) -> int:
    """Length of the infix starting at ``s[i]`` (0 = none; -1 = split after ``s[i]``, no token)."""
    n = len(s)
    c = s[i]
    inner = 0 < i < n - 1
    if c == ".":
        if i + 1 < n and s[i + 1] == ".":
            j = i + 2
            while j < n and s[j] == ".":
                j += 1
            return j - i
        if inner:
            p, q = s[i - 1], s[i + 1]
            if rules.german_infixes:
                return int(p.islower() and q.isupper())
            return int((p.islower() or p in _QUOTES) and (q.isupper() or q in _QUOTES))
        return 0
    if c == "…" or _is_icon(c):
        return 1
    if not inner:
        return 0
    p, q = s[i - 1], s[i + 1]
    if rules.german_infixes:
        return _german_infix_width(s, i, c, p, q)
    if c in "+-*^" and p in _DIGITS and q in "0123456789-":
        return 1
    if c == "," and p.isalpha() and q.isalpha():
        return 1
    if c in ":<>=/" and (p.isalpha() or p in _DIGITS) and q.isalpha():
        return 1
    if (
        rules.hyphen_infix
        and c in "-–—~"
        and (p.isalpha() or (rules.hyphen_infix == "alpha" and p in _DIGITS))
    ):
        for h in _HYPHENS:
            if s.startswith(h, i) and i + len(h) < n:
                after = s[i + len(h)]
                if after.islower() if rules.hyphen_infix == "lower" else after.isalpha():
                    return len(h)
    if rules.elision and c in _ELISION and p.isalpha() and q.isalpha():
        return -1  # "l'homme" -> "l'" "homme"
    return 0


def _german_infix_width(s: str, i: int, c: str, p: str, q: str) -> int:
    """spaCy's German infixes: punctuation, quotes and brackets between letters, "/" between
    letters or digits, "--" between letters, "-" between digits."""
    if p.isalpha() and q.isalpha() and (c in ",!?:<>=()[]" or c in _QUOTES):
        return 1
    if c == "/" and p.isalnum() and q.isalnum():
        return 1
    if c == "-":
        if p in _DIGITS and q in _DIGITS:
            return 1
        if q == "-" and p.isalpha() and i + 2 < len(s) and s[i + 2].isalpha():
            return 2
    return 0


def _infix_split(s: str, rules: _LangRules, out: list[str]) -> None:
    """Split `s` on infixes (ellipses, icons, hyphens between letters, "a,b", "a/b" ...)."""
    if _INFIX_TRIGGER.search(s) is None:
        out.append(s)
        return
    n = len(s)
    start = 0
    i = 0
    while i < n:
        width = _infix_width(s, i, rules)
        if width < 0:
            out.append(s[start : i + 1])
            start = i = i + 1
        elif width == 0:
            i += 1
        else:
            # a match at the very start is not split off (the prefix rules had their chance)
            if i != 0:
                if i != start:
                    out.append(s[start:i])
                out.append(s[i : i + width])
                start = i + width
            i += width
    if start < n:
        out.append(s[start:])


def _split_chunk(s: str, rules: _LangRules, out: list[str]) -> None:
    """Split one whitespace-free chunk the way spaCy's tokenizer does (see module docstring)."""
    specials = rules.specials
    if s.isalpha():
        sp = specials.get(s)
        if sp is None:
            out.append(s)
        else:
            out.extend(sp)
        return
    first = len(out)
    prefixes: list[str] = []
    suffixes: list[str] = []
    while s:
        if s in specials:
            break
        size = len(s)
        p = _prefix_len(s)
        q = _suffix_len(s[p:], rules)
        if p:
            rest = s[p:]
            if rest and rest in specials:
                prefixes.append(s[:p])
                s = rest
                break
        if q:
            rest = s[:-q]
            if rest and rest in specials:
                suffixes.append(s[-q:])
                s = rest
                break
        if p and q and p + q <= len(s):
            prefixes.append(s[:p])
            suffixes.append(s[-q:])
            s = s[p:-q]
        elif p:
            prefixes.append(s[:p])
            s = s[p:]
        elif q:
            suffixes.append(s[-q:])
            s = s[:-q]
        if s in specials or len(s) == size:
            break
    out.extend(prefixes)
    if s:
        sp = specials.get(s)
        if sp is not None:
            out.extend(sp)
        elif s.isalnum() or _is_url(s):
            out.append(s)
        else:
            _infix_split(s, rules, out)
    if suffixes:
        out.extend(reversed(suffixes))
    if len(out) - first > 1:
        _merge_emoticons(out, first)


_EMO_PREFIXES = frozenset(e[:k] for e in _EMOTICONS for k in range(1, len(e)))


def _merge_emoticons(out: list[str], first: int) -> None:
    """Re-join tokens of one chunk that together spell an emoticon (spaCy does the same)."""
    i = first
    prefixes = _EMO_PREFIXES
    while i < len(out) - 1:
        if out[i] not in prefixes:
            i += 1
            continue
        for span in (3, 2):
            if i + span <= len(out):
                joined = "".join(out[i : i + span])
                if joined in _EMOTICONS:
                    out[i : i + span] = [joined]
                    break
        i += 1


# --------------------------------------------------------------------------------------------------
# Character segmentation for languages written without spaces
# --------------------------------------------------------------------------------------------------

_NO_SPACE_SCRIPT = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u0f00-\u0fff"  # Tibetan
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff\u19e0-\u19ff"  # Khmer
    "\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c"  # CJK radicals, marks
    "\u3040-\u30ff\u31f0-\u31ff"  # kana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han
    "\uff66-\uff9f"  # half-width katakana
    "\U00020000-\U0003ffff"  # Han extensions
)


def _mark_class() -> str:
    marks = [
        chr(c)
        for lo, hi in ((0x0300, 0x036F), (0x0E00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF),
                       (0x3099, 0x309A), (0xFE00, 0xFE0F))
        for c in range(lo, hi + 1)
        if unicodedata.category(chr(c)) in ("Mn", "Mc", "Me")
    ]  # fmt: skip
    return "".join(re.escape(m) for m in marks)


_MARKS = _mark_class()
# a no-space-script character with its combining marks | a run of anything else that is not a space
_CLUSTER_RE = re.compile(rf"(?P<c>[{_NO_SPACE_SCRIPT}][{_MARKS}]*)|[^\s{_NO_SPACE_SCRIPT}]+")


def _split_no_space(text: str, rules: _LangRules, cache: dict[str, tuple[str, ...]]) -> list[str]:
    out: list[str] = []
    for m in _CLUSTER_RE.finditer(text):
        if m.lastgroup == "c":
            out.append(m.group())
        else:
            out.extend(_split_chunk_cached(m.group(), rules, cache))
    return out


# Per language: chunk -> tokens for chunks that take the full prefix/suffix/infix walk. Web text
# repeats such chunks (URLs, "(2008)", "©", bullets) across documents, so a bounded memo turns most
# of that walk into one dict lookup; it is cleared when full, so memory stays bounded.
_CHUNK_CACHES: dict[str, dict[str, tuple[str, ...]]] = {}
CHUNK_CACHE_SIZE = 65_536


def _split_chunk_cached(chunk: str, rules: _LangRules, cache: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    tokens = cache.get(chunk)
    if tokens is None:
        parts: list[str] = []
        _split_chunk(chunk, rules, parts)
        tokens = tuple(parts)
        if len(cache) >= CHUNK_CACHE_SIZE:
            cache.clear()
        cache[chunk] = tokens
    return tokens


# --------------------------------------------------------------------------------------------------
# Public segmentation helpers
# --------------------------------------------------------------------------------------------------


_FAST_SUFFIXES = frozenset(",.;:!?")


def split_words(text: str, lang: str | None = "en") -> list[str]:
    """Split `text` into words (and punctuation tokens) for `lang`; see the module docstring.

    Punctuation is kept as separate tokens, as datatrove's tokenizers do, because the Gopher rules
    count them (``#`` per word, share of words with a letter). Whitespace is never a token.
    """
    key = normalize_lang(lang)
    custom = _CUSTOM_SPLITTERS.get(key)
    if custom is not None:
        return custom(text)
    rules = _RULES.get(key, _DEFAULT_RULES)
    cache = _CHUNK_CACHES.setdefault(key, {})
    if key in NO_SPACE_LANGS:
        return _split_no_space(text, rules, cache)
    out: list[str] = []
    specials = rules.specials
    append = out.append
    for chunk in text.split():
        if (chunk.isalpha() or len(chunk) == 1 or chunk.isdigit()) and chunk not in specials:
            append(chunk)  # nothing to split off a plain word, number or lone mark
            continue
        # Fast path for the next most common chunk, a word with one trailing mark ("word," "word.");
        # the full prefix/suffix/infix walk below gives the same tokens at ~10x the cost.
        last = chunk[-1]
        word = chunk[:-1]
        if (last in _FAST_SUFFIXES and word.isalpha() and (last != "." or word[-1].islower())
                and chunk not in specials and word not in specials):
            append(word)
            append(last)
        else:
            out.extend(_split_chunk_cached(chunk, rules, cache))
    return out


def split_lines(text: str) -> list[str]:
    """Lines as Python's ``str.splitlines`` sees them (also ``\\r``, ``\\x0b``, ``\\u2028`` ...).

    Why that function: the Gopher and C4 line rules were defined (and measured) with it.
    """
    return text.splitlines()


_PARA_SPLIT = re.compile(r"\n{2,}")
_LINE_RUNS = re.compile(r"\n+")


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs: blocks separated by two or more newlines (outer whitespace stripped first)."""
    return _PARA_SPLIT.split(text.strip())


def word_ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """All contiguous `n`-word windows of `words`, in order (empty when there are fewer words)."""
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def find_duplicates(items: Iterable[str]) -> tuple[int, int]:
    """(number of items seen before, total characters of those repeats) -- Gopher's duplicate count."""
    seen: set[str] = set()
    dup_items = 0
    dup_chars = 0
    for item in items:
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup_items, dup_chars


def _is_punct_token(tok: str) -> bool:
    return all(unicodedata.category(c)[0] == "P" for c in tok)


def count_sentences_in_tokens(tokens: Sequence[str]) -> int:
    """Sentences in a token sequence: a new one starts at the first non-punctuation token after a
    sentence terminator token ("." "!" "?" "。" ...), as spaCy's rule-based sentencizer does."""
    if not tokens:
        return 0
    count = 1
    seen_end = False
    for tok in tokens:
        if tok in TERMINAL_PUNCTUATION:
            seen_end = True
        elif seen_end and not _is_punct_token(tok):
            count += 1
            seen_end = False
    return count


def count_sentences(text: str, lang: str | None = "en") -> int:
    """Number of sentences in `text` (a line, typically); see `count_sentences_in_tokens`."""
    return count_sentences_in_tokens(split_words(text, lang))


# --------------------------------------------------------------------------------------------------
# TextStats
# --------------------------------------------------------------------------------------------------


class TextStats:
    """Every view and statistic of one document that the rules need, each computed at most once.

    Build one per document (``TextStats(text, lang)``) and pass it to each rule's ``check``; rules
    only read it. Attributes are lazy (`functools.cached_property`), so a rule that stops early never
    pays for n-grams it did not look at.
    """

    def __init__(self, text: str, lang: str | None = "en") -> None:
        self.text = text
        self.lang = normalize_lang(lang)
        self.no_space = self.lang in NO_SPACE_LANGS
        self._ngrams: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ---- basic views ----------------------------------------------------------------------------
    @cached_property
    def words(self) -> list[str]:
        """Words and punctuation tokens (`split_words`)."""
        return split_words(self.text, self.lang)

    @cached_property
    def lines(self) -> list[str]:
        """``text.splitlines()`` (Gopher quality, C4)."""
        return self.text.splitlines()

    @cached_property
    def line_runs(self) -> list[str]:
        """``text`` split on runs of newlines, unstripped (Gopher repetition's "lines")."""
        return _LINE_RUNS.split(self.text)

    @cached_property
    def paragraphs(self) -> list[str]:
        """`split_paragraphs` (Gopher repetition)."""
        return split_paragraphs(self.text)

    @cached_property
    def nonblank_lines(self) -> list[str]:
        """``text.split("\\n")`` without blank lines, unstripped (FineWeb quality)."""
        return [line for line in self.text.split("\n") if line.strip()]

    @cached_property
    def newline_count(self) -> int:
        return self.text.count("\n")

    # ---- word summaries -------------------------------------------------------------------------
    @cached_property
    def _word_summary(self) -> tuple[int, int, int]:
        """(non-symbol words, their total length, words with at least one letter)."""
        punct = PUNCTUATION
        n_ns = 0
        len_ns = 0
        n_alpha = 0
        for w in self.words:
            if w.isalpha():
                n_ns += 1
                len_ns += len(w)
                n_alpha += 1
                continue
            c = w[0]
            if c not in punct or any(ch not in punct for ch in w):
                n_ns += 1
                len_ns += len(w)
            if c.isalpha() or any(ch.isalpha() for ch in w):
                n_alpha += 1
        return n_ns, len_ns, n_alpha

    @property
    def word_count(self) -> int:
        """Words that are not pure punctuation (Gopher's word count)."""
        return self._word_summary[0]

    @property
    def token_count(self) -> int:
        """All tokens, punctuation included (the denominator of Gopher's ratios)."""
        return len(self.words)

    @property
    def mean_word_length(self) -> float | None:
        """Mean length of non-punctuation words; None when there are none."""
        n, total, _ = self._word_summary
        return total / n if n else None

    @property
    def alpha_word_ratio(self) -> float | None:
        """Share of tokens containing a letter; None when there are no tokens."""
        n = len(self.words)
        return self._word_summary[2] / n if n else None

    def stop_word_count(self, stop_words: frozenset[str] | set[str]) -> int:
        """How many distinct stop words occur.

        Space languages: exact (case-sensitive) word matches, as in Gopher. Character-segmented
        languages: substring occurrences, since a multi-character function word (Thai ``และ``) is
        not one token there.
        """
        if not stop_words:
            return 0
        if self.no_space:
            text = self.text
            return sum(1 for w in stop_words if w in text)
        return len(stop_words.intersection(self.words))

    # ---- n-grams ----------------------------------------------------------------------------------
    @cached_property
    def _word_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(dense word ids, cumulative word lengths with a leading 0)."""
        words = self.words
        ids = {w: i for i, w in enumerate(dict.fromkeys(words))}
        wid = np.fromiter(map(ids.__getitem__, words), dtype=np.int64, count=len(words))
        cum = np.zeros(len(words) + 1, dtype=np.int64)
        if self.words:
            np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=len(words)), out=cum[1:])
        return wid, cum

    def ngram_ids(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(id of the n-gram starting at each position, occurrences of each id).

        Equal ids mean equal word sequences. Ids for n come from ids for n-1 and one more word, so
        every n is one `numpy.unique` over integers: no string joining, no Python loop per n-gram.
        """
        cached = self._ngrams.get(n)
        if cached is not None:
            return cached
        wid, _ = self._word_arrays
        m = len(wid) - n + 1
        if m <= 0:
            res = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        elif n == 1:
            res = (wid, np.bincount(wid))
        else:
            prev, prev_counts = self.ngram_ids(n - 1)
            if len(prev_counts) == len(prev):
                # every (n-1)-gram is unique, so every n-gram is too
                inv = np.arange(m, dtype=np.int64)
                res = (inv, np.ones(m, dtype=np.int64))
            else:
                key = prev[:m] * (int(wid.max()) + 1) + wid[n - 1 :]
                _, inv = np.unique(key, return_inverse=True)
                inv = inv.astype(np.int64, copy=False).reshape(-1)
                res = (inv, np.bincount(inv))
        self._ngrams[n] = res
        return res

    def _ngram_chars(self, positions: np.ndarray | int, n: int) -> np.ndarray | int:
        _, cum = self._word_arrays
        chars = cum[positions + n] - cum[positions]
        return chars if self.no_space else chars + (n - 1)

    def top_ngram_chars(self, n: int) -> int:
        """Characters covered by the most frequent n-gram: its length (words joined by a space, or
        without separator in character-segmented languages) times its count; ties go to the n-gram
        seen first. 0 when the document has fewer than n words."""
        inv, counts = self.ngram_ids(n)
        if len(inv) == 0:
            return 0
        top = int(counts.max())
        if top == 1:
            first = 0
        else:
            hits = np.flatnonzero(counts[inv] == top)
            first = int(hits[0])
        return int(self._ngram_chars(first, n)) * top

    def duplicate_ngram_chars(self, n: int) -> int:
        """Characters in repeated n-grams, counted as Gopher does: scan left to right; an n-gram
        seen before adds its length (words concatenated) and the scan jumps past it, so overlapping
        repeats are not counted twice.

        Only positions whose n-gram occurs more than once can count, so the scan visits just those:
        a page with little repetition costs almost nothing.
        """
        inv, counts = self.ngram_ids(n)
        if len(inv) == 0 or len(counts) == len(inv):
            return 0
        cand = np.flatnonzero(counts[inv] > 1)
        _, cum = self._word_arrays
        chars = (cum[cand + n] - cum[cand]).tolist()
        seen: set[int] = set()
        total = 0
        next_pos = 0
        for pos, g, c in zip(cand.tolist(), inv[cand].tolist(), chars, strict=True):
            if pos < next_pos:
                continue
            if g in seen:
                total += c
                next_pos = pos + n
            else:
                seen.add(g)
        return total

    # ---- summary ----------------------------------------------------------------------------------
    def summary(self) -> dict[str, float | int | None]:
        """A few cheap statistics worth keeping as columns (word count, mean word length ...)."""
        return {
            "char_count": len(self.text),
            "word_count": self.word_count,
            "mean_word_length": self.mean_word_length,
            "alpha_word_ratio": self.alpha_word_ratio,
            "line_count": len(self.lines),
        }
