"""Personal data and secrets in prompts: detection and masking.

Contract:

- :func:`screen` finds e-mail addresses, phone numbers, payment card numbers (13-19 digits
  that pass the Luhn check), IBANs (that pass the ISO 7064 mod-97 check), US social
  security numbers, IPv4 and IPv6 addresses, and API keys or tokens (``sk-...``, GitHub,
  AWS, Slack and Google keys, JWTs, the token after ``Bearer``, hex strings of 32+ and
  mixed-case alphanumeric tokens of 40+ characters). It returns the text with each finding
  replaced by its kind's placeholder, such as ``[EMAIL]``, and the count of each kind.
- Candidates come from precompiled patterns and are then checked where a checksum exists,
  so a card number with a wrong Luhn digit or an IBAN with a wrong check is left alone.
- Findings never overlap: where two would, one span covering both is masked.
- The kinds are a fixed set (:data:`KINDS`), safe to use as a metric label.

Speed: one scan visits only the characters that can start or anchor a finding (capitals,
digits, ``@ : + ( _ -``, ``b``) and a second finds long tokens; ordinary prose costs about
30 ns a character. Pure functions, no I/O. The caller decides what an exception means; the
service refuses the request (it fails closed), so an error never lets a prompt through.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field

EMAIL = "email"
PHONE = "phone"
CREDIT_CARD = "credit_card"
IBAN = "iban"
SSN = "ssn"
IP_ADDRESS = "ip_address"
SECRET = "api_key"

KINDS = (SECRET, EMAIL, IBAN, CREDIT_CARD, SSN, PHONE, IP_ADDRESS)
PLACEHOLDERS = {
    SECRET: "[API_KEY]",
    EMAIL: "[EMAIL]",
    IBAN: "[IBAN]",
    CREDIT_CARD: "[CREDIT_CARD]",
    SSN: "[SSN]",
    PHONE: "[PHONE]",
    IP_ADDRESS: "[IP_ADDRESS]",
}


_HEX = "0123456789abcdefABCDEF"
_EMAIL_LOCAL = string.ascii_letters + string.digits + "._%+-"


@dataclass(frozen=True, slots=True)
class Screened:
    """A prompt after screening: the masked text and how many findings of each kind."""

    text: str
    found: dict[str, int] = field(default_factory=dict)


Screen = Callable[[str], Screened]


def luhn_valid(digits: str) -> bool:
    """Return True when a string of digits passes the Luhn check used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """Return True when an IBAN (spaces allowed) has a valid length and mod-97 check."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    # Letters count as two-digit numbers: A=10 ... Z=35.
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _card_ok(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _phone_ok(candidate: str) -> bool:
    return 7 <= sum(ch.isdigit() for ch in candidate) <= 15


def _generic_secret_ok(candidate: str) -> bool:
    """Return True for a hex string of 32+ or a mixed-case alphanumeric token of 40+."""
    # Long runs of letters alone are words or identifiers; a secret mixes classes.
    token = candidate.rstrip("=")
    if all(ch in _HEX for ch in token):
        return any(ch.isdigit() for ch in token) and any(ch.isalpha() for ch in token)
    return (
        len(token) >= 40
        and any(ch.isdigit() for ch in token)
        and any(ch.islower() for ch in token)
        and any(ch.isupper() for ch in token)
    )


def _ipv4_ok(candidate: str) -> bool:
    return all(int(octet) <= 255 for octet in candidate.split("."))


def _ipv6_ok(candidate: str) -> bool:
    # "::" or "::1" alone say nothing about anyone; an address has at least two groups.
    if sum(1 for group in candidate.split(":") if group) < 2:
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _extend_left(chars: str, limit: int, not_after: str) -> Callable[[str, int], int | None]:
    """Return a locator that moves a finding's start left over up to ``limit`` of ``chars``.

    Used where a pattern is found by a character in its middle (the ``@`` of an address,
    the first ``:`` of an IPv6 address). The finding is dropped when the character before
    its start is one of ``not_after``: it would begin inside a longer word.
    """
    allowed = frozenset(chars)
    stop = frozenset(not_after)

    def locate(text: str, at: int) -> int | None:
        start = at
        while start > 0 and at - start < limit and text[start - 1] in allowed:
            start -= 1
        if start > 0 and text[start - 1] in stop:
            return None
        return start

    return locate


@dataclass(frozen=True, slots=True)
class _Detector:
    """One pattern: the character that triggers it, the rest, and where a finding starts.

    ``shift`` moves the start from the trigger character (a prefix such as ``sk`` lies
    before the trigger ``-``; the token after ``Bearer`` starts seven characters after the
    ``B``); ``locate`` replaces ``shift`` when the start is a variable distance away.
    """

    kind: str
    trigger: str
    rest: str
    validate: Callable[[str], bool] | None = None
    shift: int = 0
    locate: Callable[[str, int], int | None] | None = None


_WORD = string.ascii_letters + string.digits + "_"

# Tried in this order at one trigger position. Each pattern carries its own boundaries, so a
# finding never starts or ends inside a longer word or number.
_ALL: tuple[_Detector, ...] = (
    _Detector(SECRET, "-", r"(?<=sk-)(?<![\w-]sk-)[A-Za-z0-9_-]{20,}(?![\w-])", shift=-2),
    _Detector(
        SECRET, "-", r"(?<=xox[abprs]-)(?<![\w-]xox[abprs]-)[A-Za-z0-9-]{10,}(?![\w-])", shift=-4
    ),
    _Detector(SECRET, "_", r"(?<=gh[pousr]_)(?<![\w-]gh[pousr]_)[A-Za-z0-9]{36,}(?!\w)", shift=-3),
    _Detector(SECRET, "_", r"(?<=github_pat_)(?<![\w-]github_pat_)\w{22,}", shift=-10),
    _Detector(SECRET, "J", r"(?<=eyJ)(?<![\w-]eyJ)[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]*", shift=-2),
    # The credential after "Bearer " in a pasted header, whatever its format.
    _Detector(SECRET, "[Bb]", r"(?<![\w-].)earer [\w.~+/-]{16,}=*", shift=7),
    _Detector(
        SECRET, "[A-Z]", r"(?<![\w-].)(?<=A)(?:(?:KIA|SIA)[0-9A-Z]{16}|Iza[\w-]{35})(?![\w-])"
    ),
    _Detector(
        IBAN,
        "[A-Z]",
        r"(?<!\w.)[A-Z]\d\d(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)(?!\w)",
        iban_valid,
    ),
    _Detector(
        EMAIL,
        "@",
        r"(?<=[\w.%+-]@)(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![\w-])",
        locate=_extend_left(_EMAIL_LOCAL, 1 << 20, ""),
    ),
    _Detector(
        CREDIT_CARD,
        r"\d",
        # 13-19 digits, written together or in the groups cards print: 4-4-4-x, 4-6-5, 4-6-4.
        r"(?<![\w-].)(?:\d{12,18}|\d{3}(?:[ -]\d{4}){2}[ -]\d{1,7}|\d{3}[ -]\d{6}[ -]\d{4,5})"
        r"(?!\w)",
        _card_ok,
    ),
    _Detector(
        SSN,
        r"\d",
        r"(?<![\w-].)\d\d(?<!000)(?<!666)(?<!9\d\d)"
        r"(?:-(?!00)\d\d-|\x20(?!00)\d\d\x20)(?!0000)\d{4}(?![\w-])",
    ),
    _Detector(PHONE, r"\d", r"(?<!\w.)\d\d[-. ]\d{3}[-. ]\d{4}(?!\w)"),
    _Detector(IP_ADDRESS, r"\d", r"(?<![\w.].)\d{0,2}(?:\.\d{1,3}){3}(?!\.?\d)(?!\w)", _ipv4_ok),
    _Detector(
        PHONE, r"\+", r"(?<![\w+].)\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){2,6}(?!\w)", _phone_ok
    ),
    _Detector(PHONE, r"\(", r"(?<!\w.)\d{3}\)[ ]?\d{3}[-. ]\d{4}(?!\w)"),
    _Detector(
        IP_ADDRESS,
        ":",
        # Possessive repeats: a long run of colons fails at once instead of backtracking.
        r"(?<!::)[0-9A-Fa-f]{0,4}+:(?:[0-9A-Fa-f]{0,4}+:){0,5}+"
        r"(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])(?!\.\d)",
        _ipv6_ok,
        locate=_extend_left(_HEX, 4, _WORD + ":."),
    ),
)


def _by_trigger(detectors: tuple[_Detector, ...]) -> tuple[_Detector, ...]:
    """Order detectors so those sharing a trigger are adjacent, keeping their relative order."""
    triggers = list(dict.fromkeys(d.trigger for d in detectors))
    return tuple(sorted(detectors, key=lambda d: triggers.index(d.trigger)))


DETECTORS = _by_trigger(_ALL)
# Every detector's trigger in one class (a test checks that it covers them all).
TRIGGERS = r"[A-Z0-9b@:+(_-]"
# The scan: one trigger character (the engine skips ahead to the next one in C), then one
# group per trigger, entered only when the character matches it, holding the rests of the
# detectors with that trigger. The empty group after each rest makes ``lastindex`` name the
# detector that matched.
_SCAN = re.compile(
    TRIGGERS
    + "(?:"
    + "|".join(
        f"(?<={trigger})(?:"
        + "|".join(f"{d.rest}()" for d in DETECTORS if d.trigger == trigger)
        + ")"
        for trigger in dict.fromkeys(d.trigger for d in DETECTORS)
    )
    + ")",
    re.ASCII,
)
# Each detector alone, for a second try at a position where the scan's choice was rejected.
_ALONE = tuple(re.compile(d.trigger + d.rest, re.ASCII) for d in DETECTORS)
# Long hex or base64-like tokens. Spaces and punctuation, which start these, are too common
# to share the trigger scan, where each would try every group; a scan of their own, from
# the character before the token, costs far less.
_LONG_TOKEN = r"[\w+-]{32,}={0,2}(?![\w+/=-])"
_LONG_SCAN = re.compile(r"[^\w+/=-]" + _LONG_TOKEN, re.ASCII)
_LONG_LEADING = re.compile(_LONG_TOKEN, re.ASCII)


def find(text: str) -> list[tuple[int, int, str]]:
    """Return the non-overlapping findings in ``text`` as ``(start, end, kind)``, in order."""
    found: list[tuple[int, int, str]] = []
    search = _SCAN.search
    pos = 0
    while (m := search(text, pos)) is not None:
        at = m.start()
        hit = _accept(text, at, (m.lastindex or 1) - 1, m.end())
        if hit is None:
            hit = _fallback(text, at, m.lastindex or 1)
        if hit is None:
            pos = at + 1
            continue
        _add(found, hit)
        pos = max(hit[1], at + 1)
    long_tokens = _long_tokens(text)
    if not long_tokens:
        return found
    merged: list[tuple[int, int, str]] = []
    for hit in sorted(found + long_tokens):
        _add(merged, hit)
    return merged


def _accept(text: str, at: int, index: int, end: int) -> tuple[int, int, str] | None:
    """Return the finding of detector ``index`` triggered at ``at``, if it holds up."""
    detector = DETECTORS[index]
    if detector.locate is not None:
        start = detector.locate(text, at)
        if start is None:
            return None
    else:
        start = at + detector.shift
    if detector.validate is not None and not detector.validate(text[start:end]):
        return None
    return start, end, detector.kind


def _fallback(text: str, at: int, first: int) -> tuple[int, int, str] | None:
    """Try the detectors after a rejected one at the same trigger; the first that holds wins."""
    for index in range(first, len(DETECTORS)):
        m = _ALONE[index].match(text, at)
        if m is not None and (hit := _accept(text, at, index, m.end())) is not None:
            return hit
    return None


def _long_tokens(text: str) -> list[tuple[int, int, str]]:
    """Return the long tokens that look like secrets: hex digests, base64 keys."""
    found = []
    leading = _LONG_LEADING.match(text)
    if leading is not None and _generic_secret_ok(leading.group()):
        found.append((0, leading.end(), SECRET))
    for m in _LONG_SCAN.finditer(text):
        start = m.start() + 1
        if _generic_secret_ok(text[start : m.end()]):
            found.append((start, m.end(), SECRET))
    return found


def _add(found: list[tuple[int, int, str]], hit: tuple[int, int, str]) -> None:
    """Append a finding; one that reaches back over earlier findings absorbs them."""
    start, end, kind = hit
    while found and found[-1][1] > start:
        previous = found.pop()
        start = min(start, previous[0])
        end = max(end, previous[1])
    found.append((start, end, kind))


def screen(text: str) -> Screened:
    """Return ``text`` with every finding replaced by its kind's placeholder, and the counts."""
    spans = find(text)
    if not spans:
        return Screened(text)
    pieces: list[str] = []
    found: dict[str, int] = {}
    last = 0
    for start, end, kind in spans:
        pieces.append(text[last:start])
        pieces.append(PLACEHOLDERS[kind])
        found[kind] = found.get(kind, 0) + 1
        last = end
    pieces.append(text[last:])
    return Screened("".join(pieces), found)
