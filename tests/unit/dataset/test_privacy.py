"""Secrets and personal data: known credential formats block, example passwords warn, --fix redacts whole secrets."""

from __future__ import annotations

import pytest

from tools.dataset.model import Example
from tools.dataset.privacy import privacy_issues, redact_secrets

PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aumkRKoCQ\n"
       "Y2l0eSBvZiB0aGUgZW5kLg==\n-----END RSA PRIVATE KEY-----")


def issues(text: str) -> dict[str, str]:
    ex = Example.chat(("user", "Explain this config"), ("assistant", text), line=7)
    return {i.code: i.severity for i in privacy_issues(ex)}


@pytest.mark.parametrize("text", [
    "Use sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc" + " for payments.",
    "curl -H 'Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345'",
    "client_secret: 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "token glpat-" + "xYz12AbC34dEf56GhI78jK",
    "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=" + "A" * 86 + "==",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "Connect with postgres://admin:s3cretPass@db.internal:5432/app",
    PEM,
])
def test_known_credential_formats_are_errors(text):
    assert issues(text).get("secret") == "error"


def test_database_url_is_not_reported_as_an_email():
    assert "pii_email" not in issues("postgres://admin:s3cretPass@db.internal.acme.io/app")


def test_example_password_in_ordinary_text_is_a_warning_not_a_block():
    assert issues('Set password="hunter2x" in the demo form, then log in.') == {"secret": "warning"}


@pytest.mark.parametrize(("text", "code"), [
    ("Call me on 09061701461 to claim", "pii_phone"),
    ("Ruf an: +49 30 901820", "pii_phone"),
    ("Office: (212) 555-7890", "pii_phone"),
    ("SSN 123-45-6789 on file", "pii_id"),
    ("Card 4539 1488 0343 6467 expired", "pii_id"),
])
def test_personal_data_is_a_warning(text, code):
    assert issues(text).get(code) == "warning"


def test_placeholders_and_ordinary_numbers_pass():
    assert issues("Call 555-0100 or write to name@example.com; ship 1234 units in Q3 2024.") == {}


def test_fix_redacts_the_whole_secret_and_keeps_the_text_around_it():
    text = f"Key below.\n{PEM}\nDone."
    assert redact_secrets(text) == "Key below.\n<SECRET>\nDone."
    assert redact_secrets('password="hunter2x" then') == 'password="<SECRET>" then'
    assert redact_secrets("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nregion = eu") == \
        "aws_secret_access_key = <SECRET>\nregion = eu"
    assert redact_secrets("postgres://admin:s3cretPass@db:5432/app") == "postgres://admin:<SECRET>@db:5432/app"


SECRETS = [
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "glpat-" + "xYz12AbC34dEf56GhI78jK",
    "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "AKIA" + "IOSFODNN7EXAMPLE", "ghp_" + "a1" * 18,
    "xoxb-" + "1234567890-abcdefghij", "AC" + "0123456789abcdef" * 2, "AKC" + "p8aabbccddeeff",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    'aws_key = "' + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" + '"',
]
PROSE = ("The implementation of internationalization needs responsibilities shared across teams, "
         "well-documented and reviewed. ")


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("where", ["start", "middle", "end", "alone"])
def test_the_quick_scan_finds_what_every_pattern_on_the_whole_text_finds(secret, where):
    from tools.dataset.privacy import _known_formats, find_secret

    text = {"start": f"{secret} {PROSE * 3}", "middle": f"{PROSE * 2}key: {secret} (rotated). {PROSE}",
            "end": f"{PROSE * 3}{secret}", "alone": secret}[where]
    # the reference: every credential pattern over the whole text, as the scan did before it looked only near
    # long runs of characters
    expected = next((name for name, p in _known_formats() if (m := p.search(text)) and len(m.group()) >= 16), None)
    assert expected is not None
    found = find_secret(text)
    assert found is not None
    assert found[0] == expected
    assert found[2]


def test_long_ordinary_words_alone_are_not_scanned_as_credentials():
    from tools.dataset.privacy import find_secret

    assert find_secret(PROSE * 20) is None
