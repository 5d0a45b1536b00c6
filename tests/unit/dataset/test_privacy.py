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
