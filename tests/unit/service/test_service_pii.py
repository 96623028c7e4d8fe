"""PII detection and masking: each kind found where it is, and left alone where it is not."""

from __future__ import annotations

import itertools
import random
import re
import string

import pytest
from inferops_service import pii


def kinds(text: str) -> list[str]:
    return [kind for _, _, kind in pii.find(text)]


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        ("mail jane.doe+news@example.co.uk today", "jane.doe+news@example.co.uk", "email"),
        ("<a href='mailto:ops@infer-ops.io'>", "ops@infer-ops.io", "email"),
        ("call +1 (555) 123-4567 now", "+1 (555) 123-4567", "phone"),
        ("call 555-123-4567 now", "555-123-4567", "phone"),
        ("call (555) 123-4567 now", "(555) 123-4567", "phone"),
        ("ring +44 20 7946 0958.", "+44 20 7946 0958", "phone"),
        ("mobile +4915112345678", "+4915112345678", "phone"),
        ("card 4111 1111 1111 1111 exp", "4111 1111 1111 1111", "credit_card"),
        ("card 4111-1111-1111-1111", "4111-1111-1111-1111", "credit_card"),
        ("amex 378282246310005", "378282246310005", "credit_card"),
        ("amex 3782 822463 10005", "3782 822463 10005", "credit_card"),
        ("iban DE89 3704 0044 0532 0130 00 ok", "DE89 3704 0044 0532 0130 00", "iban"),
        ("iban GB82WEST12345698765432", "GB82WEST12345698765432", "iban"),
        ("ssn 123-45-6789", "123-45-6789", "ssn"),
        ("ssn 123 45 6789", "123 45 6789", "ssn"),
        ("from 192.168.1.20.", "192.168.1.20", "ip_address"),
        ("v6 2001:db8::8a2e:370:7334 up", "2001:db8::8a2e:370:7334", "ip_address"),
        ("link-local fe80::1%", "fe80::1", "ip_address"),
        ("mapped [::ffff:192.0.2.1]", "::ffff:192.0.2.1", "ip_address"),
        ("key sk-proj-abcdefghijklmnopqrstuvwxyz012345", "sk-proj-abcdefghijklmnop"
         "qrstuvwxyz012345", "api_key"),
        ("gh ghp_" + "a1" * 18, "ghp_" + "a1" * 18, "api_key"),
        ("aws AKIAIOSFODNN7EXAMPLE.", "AKIAIOSFODNN7EXAMPLE", "api_key"),
        ("slack xoxb-123456789012-abcdefABCDEF", "xoxb-123456789012-abcdefABCDEF", "api_key"),
        ("google AIzaSyA1234567890abcdefghijklmnopqrstuv",
         "AIzaSyA1234567890abcdefghijklmnopqrstuv", "api_key"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9",
         "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9",
         "api_key"),
        ("Authorization: Bearer abcdefghijklmnopqrstu", "abcdefghijklmnopqrstu", "api_key"),
        ("sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
         "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "api_key"),
        ("token Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRkdISUpLTE1O==",
         "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRkdISUpLTE1O==", "api_key"),
        ("9f86d081884c7d659a2feaa0c55ad015a3bf is first", "9f86d081884c7d659a2feaa0c55ad015a3bf",
         "api_key"),
    ],
)  # fmt: skip
def test_each_kind_is_found_and_masked(text: str, secret: str, kind: str) -> None:
    assert kinds(text) == [kind]
    screened = pii.screen(text)
    assert secret not in screened.text
    assert screened.text == text.replace(secret, pii.PLACEHOLDERS[kind])
    assert screened.found == {kind: 1}


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 has a wrong check digit",
        "card 4111111111111112",
        "iban DE89 3704 0044 0532 0130 01 fails mod 97",
        "iban GB82WEST12345698765431",
        "ssn 000-12-3456 and 666-12-3456 and 900-12-3456 are never issued",
        "not an ip 999.1.1.1 nor 1.2.3.4.5",
        "the time is 12:30:45 and C++ has std::vector and :: alone",
        "version 1.2.3 released on 2024-01-15, order 12345",
        "an email-ish user@localhost without a domain",
        "sk-short is not a key, nor is ghp_short",
        "thisisaverylongwordwithoutanydigitsorcapitalsatallreally",
        "/usr/local/lib/python3.11/site-packages/inferops_service/app.py",
        "price 1 234 567 and code 12 34 56",
        "",
    ],
)
def test_lookalikes_are_left_alone(text: str) -> None:
    assert pii.find(text) == []
    screened = pii.screen(text)
    assert screened.text == text
    assert screened.found == {}


def test_luhn_and_mod97_checks() -> None:
    assert pii.luhn_valid("4111111111111111")
    assert pii.luhn_valid("79927398713")
    assert not pii.luhn_valid("79927398710")
    assert pii.iban_valid("DE89 3704 0044 0532 0130 00")
    assert pii.iban_valid("gb82west12345698765432")
    assert not pii.iban_valid("DE89 3704 0044 0532 0130 01")
    assert not pii.iban_valid("DE89")


def test_several_findings_are_counted_by_kind() -> None:
    text = (
        "From ann@example.com and bob@example.org at 10.0.0.1: card 4111111111111111, "
        "ssn 123-45-6789. Reply to ann@example.com."
    )
    screened = pii.screen(text)
    assert screened.found == {"email": 3, "ip_address": 1, "credit_card": 1, "ssn": 1}
    assert screened.text == (
        "From [EMAIL] and [EMAIL] at [IP_ADDRESS]: card [CREDIT_CARD], ssn [SSN]. Reply to [EMAIL]."
    )


def test_findings_at_the_edges_of_the_text() -> None:
    assert pii.screen("4111111111111111").text == "[CREDIT_CARD]"
    assert pii.screen("a@b.io").text == "[EMAIL]"
    assert pii.screen("0123456789abcdef0123456789abcdef").text == "[API_KEY]"


def test_overlapping_findings_are_masked_as_one_span() -> None:
    # The digits of the local part are a valid card number; the address is masked whole.
    screened = pii.screen("write to 4111111111111111@example.com")
    assert screened.text == "write to [EMAIL]"
    assert "4111" not in screened.text


def test_every_trigger_is_in_the_scan_class() -> None:
    triggers = re.compile(pii.TRIGGERS, re.ASCII)
    for detector in pii.DETECTORS:
        own = re.compile(detector.trigger, re.ASCII)
        for ch in map(chr, range(128)):
            if own.fullmatch(ch):
                assert triggers.fullmatch(ch), (detector.kind, ch)


def test_findings_never_overlap_on_noisy_text() -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + " .-@:+()_" * 3
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(200)))
        spans = pii.find(text)
        assert spans == sorted(spans)
        for (_, end, _), (start, _, _) in itertools.pairwise(spans):
            assert end <= start
        assert all(0 <= s < e <= len(text) for s, e, _ in spans)


def test_kinds_are_the_placeholders() -> None:
    assert set(pii.KINDS) == set(pii.PLACEHOLDERS)
    assert {d.kind for d in pii.DETECTORS} | {pii.SECRET} == set(pii.KINDS)
