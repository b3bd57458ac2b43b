"""Text front end for the TTS task: English normalisation and the character vocabulary.

The model reads characters, so everything a reader would say must be spelt out first: numbers, years, ordinals,
money, percentages and common abbreviations become words ("Dr. Smith paid $5 on the 3rd" -> "doctor smith paid
five dollars on the third"). ``expand`` does that and keeps case and punctuation (it is what LJSpeech calls the
"normalized" column); ``normalize`` also lowercases and drops every character outside the vocabulary, giving the
exact string the model is trained on. ``encode``/``decode`` map that string to integer ids (0 = pad, 1 = EOS).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import numpy as np

PAD = "_"
EOS = "~"
PAD_ID = 0
EOS_ID = 1
# pad and EOS first, then space, apostrophe and basic punctuation, then the letters
SYMBOLS: tuple[str, ...] = (PAD, EOS, " ", "'", '"', "!", "(", ")", ",", "-", ".", ":", ";", "?") + tuple(
    "abcdefghijklmnopqrstuvwxyz"
)
SYMBOL_TO_ID: dict[str, int] = {s: i for i, s in enumerate(SYMBOLS)}
vocab_size: int = len(SYMBOLS)

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}

# Abbreviations that are always expanded when written with their period (case-sensitive: "No." but not "no.").
_ABBREVIATIONS: dict[str, str] = {
    "Mr": "mister", "Mrs": "missus", "Ms": "miss", "Dr": "doctor", "Prof": "professor", "Jr": "junior",
    "Sr": "senior", "Gen": "general", "Gov": "governor", "Capt": "captain", "Col": "colonel",
    "Lt": "lieutenant", "Sgt": "sergeant", "Maj": "major", "Rev": "reverend", "Hon": "honorable",
    "Mt": "mount", "Ft": "fort", "Ave": "avenue", "Rd": "road", "Blvd": "boulevard", "Co": "company",
    "Corp": "corporation", "Inc": "incorporated", "Ltd": "limited", "Bros": "brothers", "Dept": "department",
    "Jan": "January", "Feb": "February", "Mar": "March", "Apr": "April", "Aug": "August", "Sept": "September",
    "Sep": "September", "Oct": "October", "Nov": "November", "Dec": "December", "vs": "versus",
    "etc": "et cetera", "approx": "approximately",
}
# capitalised words that are not names, so "The St. Lawrence" still reads "saint"
_FUNCTION_WORDS = frozenset("the a an in at on of to from and or by for with near".split())
_ABBREV_RE = re.compile(r"\b(" + "|".join(sorted(_ABBREVIATIONS, key=len, reverse=True)) + r")\.")
_LATIN_RE = re.compile(r"\b(e\.g\.|i\.e\.)", re.IGNORECASE)
_ST_RE = re.compile(r"\bSt\.")
_NO_RE = re.compile(r"\b(No|no)\.\s*(?=\d)")
_CURRENCY_RE = re.compile(r"([$£€])\s?(\d[\d,]*)(?:\.(\d{1,2}))?\b")
_PERCENT_RE = re.compile(r"\s?%")
_TIME_RE = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}\b)")
_DECIMAL_RE = re.compile(r"\b(\d+)\.(\d+)\b")
_YEAR_RE = re.compile(r"(?<![\d.,])\b(1[1-9]\d\d|20\d\d)(s?)\b(?![.,]\d)")
_INTEGER_RE = re.compile(r"\d+")
_SYMBOLS_SPOKEN = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "#": " number ", "°": " degrees "}
_TYPOGRAPHY = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": " - ",
               "\u2026": "...", "[": "(", "]": ")", "{": "(", "}": ")"}
_CURRENCY_UNITS = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
                   "€": ("euro", "euros", "cent", "cents")}


def number_to_words(n: int) -> str:
    """Cardinal English words for an integer ("21" -> "twenty-one", "1005" -> "one thousand five")."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("-" + _ONES[ones] if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + (" " + number_to_words(rest) if rest else "")
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            if head >= 1000:  # beyond the largest scale: read the digits one by one
                return digits_to_words(str(n))
            return number_to_words(head) + " " + name + (" " + number_to_words(rest) if rest else "")
    raise AssertionError("unreachable")


def digits_to_words(digits: str) -> str:
    """Digit-by-digit reading ("0042" -> "zero zero four two"), for decimals and very long numbers."""
    return " ".join(_ONES[int(d)] for d in digits)


def ordinal_to_words(n: int) -> str:
    """Ordinal English words ("3" -> "third", "21" -> "twenty-first", "100" -> "one hundredth")."""
    words = number_to_words(n)
    head, sep, last = words.rpartition("-") if "-" in words.split(" ")[-1] else words.rpartition(" ")
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year_to_words(year: int) -> str:
    """How a year is read aloud: 1999 -> "nineteen ninety-nine", 1900 -> "nineteen hundred", 1905 -> "nineteen oh five",
    2005 -> "two thousand five", 2019 -> "twenty nineteen"."""
    if 2000 <= year <= 2009 or not 1000 <= year <= 9999:
        return number_to_words(year)
    high, low = divmod(year, 100)
    if low == 0:
        return number_to_words(high) + " hundred"
    return number_to_words(high) + " " + ("oh " + _ONES[low] if low < 10 else number_to_words(low))


def _plural(words: str) -> str:
    """Plural of a spelt-out number ("nineteen ninety" -> "nineteen nineties", "six" -> "sixes")."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    if words.endswith(("x", "s")):
        return words + "es"
    return words + "s"


def _currency(match: re.Match[str]) -> str:
    one, many, sub_one, sub_many = _CURRENCY_UNITS[match.group(1)]
    whole = int(match.group(2).replace(",", ""))
    cents = int(match.group(3).ljust(2, "0")) if match.group(3) else 0
    parts = []
    if whole or not cents:
        parts.append(f"{number_to_words(whole)} {one if whole == 1 else many}")
    if cents:
        parts.append(f"{number_to_words(cents)} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _time(match: re.Match[str]) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours > 24 or minutes > 59:  # not a clock time (e.g. a ratio): read both numbers
        return f"{number_to_words(hours)} {number_to_words(minutes)}"
    if minutes == 0:
        return f"{number_to_words(hours)} o'clock"
    return f"{number_to_words(hours)} " + ("oh " + _ONES[minutes] if minutes < 10 else number_to_words(minutes))


def _year(match: re.Match[str]) -> str:
    words = year_to_words(int(match.group(1)))
    return _plural(words) if match.group(2) else words


def _street_or_saint(match: re.Match[str]) -> str:
    """"St." is "saint" before a name (St. Louis) unless it follows a name or number (Baker St. / 5th St.)."""
    text, start, end = match.string, match.start(), match.end()
    before = text[:start].rstrip()
    prev_word = before.split()[-1] if before.split() else ""
    sentence_start = not before or before[-1] in ".!?,;:("  # a clause boundary: no name right before "St."
    after_name = (bool(prev_word) and not sentence_start and prev_word.lower() not in _FUNCTION_WORDS
                  and (prev_word[0].isupper() or prev_word[0].isdigit()))
    next_is_name = bool(re.match(r"\s*[A-Z]", text[end:]))
    word = "Saint" if next_is_name and not after_name else "Street"
    return word + ("." if not text[end:].strip() else "")


def _abbreviation(match: re.Match[str]) -> str:
    # keep the sentence-final period that the abbreviation's own period also stood for
    at_end = not match.string[match.end():].strip()
    abbreviation = match.group(1)
    word = _ABBREVIATIONS[abbreviation]
    if abbreviation[0].isupper():  # a capitalised title or name part stays capitalised: "Dr. Lee" -> "Doctor Lee"
        word = word[0].upper() + word[1:]
    return word + ("." if at_end else "")


def expand(text: str) -> str:
    """Spell out numbers, money, percentages, times, ordinals, years and abbreviations; keep case and punctuation.

    This is the "normalized" text of an LJSpeech ``metadata.csv`` line: what a reader says, still readable.
    """
    for old, new in _TYPOGRAPHY.items():
        text = text.replace(old, new)
    text = _CURRENCY_RE.sub(_currency, text)  # before the ASCII fold, which would drop £ and €
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = _LATIN_RE.sub(lambda m: "for example" if m.group(1).lower() == "e.g." else "that is", text)
    text = _ST_RE.sub(_street_or_saint, text)
    text = _NO_RE.sub(lambda m: "Number " if m.group(1) == "No" else "number ", text)
    text = _ABBREV_RE.sub(_abbreviation, text)
    text = _PERCENT_RE.sub(" percent", text)
    for symbol, spoken in _SYMBOLS_SPOKEN.items():
        text = text.replace(symbol, spoken)
    text = _TIME_RE.sub(_time, text)
    text = _ORDINAL_RE.sub(lambda m: ordinal_to_words(int(m.group(1))), text)
    text = _YEAR_RE.sub(_year, text)
    text = _THOUSANDS_RE.sub("", text)
    text = _DECIMAL_RE.sub(lambda m: f"{number_to_words(int(m.group(1)))} point {digits_to_words(m.group(2))}", text)
    text = _INTEGER_RE.sub(lambda m: number_to_words(int(m.group(0))), text)
    return re.sub(r"\s+", " ", text).strip()


def normalize(text: str) -> str:
    """The model's input string: ``expand``, lowercase, characters outside the vocabulary become spaces."""
    text = expand(text).lower()
    text = "".join(ch if ch in SYMBOL_TO_ID and ch not in (PAD, EOS) else " " for ch in text)
    return re.sub(r"\s+", " ", text).strip()


def encode(text: str, *, normalized: bool = False, add_eos: bool = True) -> np.ndarray:
    """Integer ids (int64) of ``text``; it is normalised first unless ``normalized=True`` says it already is.

    Raises ``ValueError`` naming the character when already-normalised text holds one outside the vocabulary.
    """
    if not normalized:
        text = normalize(text)
    ids = []
    for position, ch in enumerate(text):
        if ch not in SYMBOL_TO_ID or ch in (PAD, EOS):
            raise ValueError(f"character {ch!r} at position {position} of {text!r} is not in the TTS vocabulary")
        ids.append(SYMBOL_TO_ID[ch])
    if add_eos:
        ids.append(EOS_ID)
    return np.asarray(ids, dtype=np.int64)


def decode(ids: Iterable[int] | np.ndarray) -> str:
    """Text of an id sequence: pads are skipped and decoding stops at the first EOS."""
    chars = []
    for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
        if i == EOS_ID:
            break
        if i == PAD_ID:
            continue
        if not 0 <= i < vocab_size:
            raise ValueError(f"id {i} is outside the TTS vocabulary (size {vocab_size})")
        chars.append(SYMBOLS[i])
    return "".join(chars)


def separator_ids() -> tuple[int, ...]:
    """Character ids that separate words (space, punctuation, EOS, pad): word-level skip detection."""
    return tuple(i for i, s in enumerate(SYMBOLS) if not (s.isalpha() or s == "'"))
