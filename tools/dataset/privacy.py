"""Secrets and personal data in example text: credential formats from detect-secrets, phones via phonenumbers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from tools.dataset.model import Example, Issue
from tools.dataset.text import RowText

PLACEHOLDER = "<SECRET>"
_PEM = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----.*?(?:-----END \1-----|\Z)", re.S)
# credential formats detect-secrets has no plugin for
_EXTRA = (
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("a bearer token", re.compile(r"(?<=Bearer )[A-Za-z0-9._~+/-]{20,}=*")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("an OpenAI-style API key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}")),
)
# `key = value`: the key names that always hold a credential, and the ones that may hold an example password
_CREDENTIAL_KEYS = r"aws_secret_access_key|client_secret|secret_key|private_key|api[_-]?key|access[_-]?token|auth_token"
_ASSIGNMENT = re.compile(rf"(?i)\b({_CREDENTIAL_KEYS}|password|passwd|pwd|secret)\b\"?\s*[:=]\s*[\"']?"
                         r"([^\s\"',;]{6,})")
_URL_PASSWORD = re.compile(r"(://[^:/?#\[\]@\s]+:)([^:/?#\[\]@\s]+)(@)")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b")
_PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net", "test.com", "company.com")
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
_TEST_CARDS = ("4111111111111111", "4242424242424242", "5555555555554444", "378282246310005")
_DIGITS = re.compile(r"\d[\d ()./-]{6,}\d")
# the characters _DIGITS matches, as 1s in a byte mask of ASCII text: a match needs 8 of them in a row
_DIGIT_RUN_MASK = bytes(49 if chr(c) in "0123456789 ()./-" else 48 for c in range(256))
_PHONE_REGIONS = ("US", "GB", "DE")
_PLACEHOLDER_PHONE = re.compile(r"555[ .-]?01\d\d")
# every credential format matches inside a run of 14+ non-space characters (16 with the spaces some patterns
# take in); a run that is only an ordinary word (optionally capitalised, with punctuation around) cannot be one
_LONG_RUN = re.compile(r"\S{14,}")
_PLAIN_WORD = re.compile(r"[^\w\s]*[A-Z]?[a-z]+[^\w\s]*")
# the patterns that may reach back before their run: `aws ... key = "<40 chars>"` starts up to ~55 characters earlier
_REACH = 60
_TRIGGERS = ("Bearer ", "_authToken")
_ASSIGNMENT_KEYS = ("secret", "key", "token", "passw", "pwd")
_ASSIGNMENT_ENDS = ("key", "secret", "token", "password", "passwd", "pwd")


@lru_cache(maxsize=1)
def _known_formats() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """detect-secrets' credential patterns (AWS, Azure, GitHub, GitLab, Stripe, Slack, JWT …) plus a few more."""
    from detect_secrets.plugins import (
        artifactory,
        aws,
        azure_storage_key,
        discord,
        github_token,
        gitlab_token,
        jwt,
        mailchimp,
        npm,
        openai,
        pypi_token,
        sendgrid,
        slack,
        square_oauth,
        stripe,
        telegram_token,
        twilio,
    )

    plugins: list[Any] = [aws.AWSKeyDetector, azure_storage_key.AzureStorageKeyDetector,
                          github_token.GitHubTokenDetector, gitlab_token.GitLabTokenDetector,
                          jwt.JwtTokenDetector, openai.OpenAIDetector,
                          slack.SlackDetector, stripe.StripeDetector, twilio.TwilioKeyDetector,
                          sendgrid.SendGridDetector, discord.DiscordBotTokenDetector, npm.NpmDetector,
                          pypi_token.PypiTokenDetector, mailchimp.MailchimpDetector,
                          square_oauth.SquareOAuthDetector, telegram_token.TelegramBotTokenDetector,
                          artifactory.ArtifactoryDetector]
    found = [(f"a {p.secret_type}", pattern) for p in plugins for pattern in p.denylist]
    return (*found, *_EXTRA)



def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _credential_windows(text: str, row: RowText | None = None) -> list[str]:
    """The stretches of `text` that could hold a known credential format: [] for ordinary prose.

    Running ~30 patterns over every row is what made the scan slow; almost no row has a run of characters
    long and odd enough to be a token, so the patterns only look at the few stretches around such runs.
    """
    if any(t in text for t in _TRIGGERS):
        return [text]
    if row is not None and not row.has_word_of(14):
        return []
    words = text.split()
    if max(map(len, words), default=0) < 14 or all(_PLAIN_WORD.fullmatch(w) for w in words if len(w) >= 14):
        return []
    spans: list[list[int]] = []
    for run in _LONG_RUN.finditer(text):
        if _PLAIN_WORD.fullmatch(run.group()):
            continue
        start, end = max(0, run.start() - _REACH), run.end() + 1
        if spans and start <= spans[-1][1]:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return [text[a:b] for a, b in spans]


def _may_assign(text: str, lower: str) -> bool:
    """Whether `key = value` can be in the text: the assignment pattern is slow to run over every row.

    In ASCII text it needs a key name (each ends in one of _ASSIGNMENT_ENDS) followed by `:` or `=`.
    """
    if not any(k in lower for k in _ASSIGNMENT_KEYS):
        return False
    if not text.isascii():
        return True
    for end in _ASSIGNMENT_ENDS:
        pos = lower.find(end)
        while pos >= 0:
            j = pos + len(end)
            j += lower.startswith('"', j)
            while j < len(lower) and lower[j].isspace():
                j += 1
            if lower.startswith((":", "="), j):
                return True
            pos = lower.find(end, pos + 1)
    return False


def find_secret(text: str, row: RowText | None = None) -> tuple[str, str, bool] | None:
    """(what it is, the text found, certain) for the first secret; certain=False for an example-looking password.

    `row` is the same text already split into words, when the caller has it.
    """
    pem = _PEM.search(text) if "PRIVATE KEY" in text else None
    if pem:
        return "a private key", pem.group()[:30], True
    windows = _credential_windows(text, row)
    for name, pattern in _known_formats() if windows else ():
        for window in windows:
            hit = pattern.search(window)
            if hit and len(hit.group()) >= 16:
                return name, hit.group(), True
    url = _URL_PASSWORD.search(text) if "://" in text else None
    if url:
        return "a password inside a URL", url.group(2), True
    lower = text.lower()
    for hit in _ASSIGNMENT.finditer(text) if _may_assign(text, lower) else ():
        key, value = hit.group(1).lower(), hit.group(2)
        if value == PLACEHOLDER or value.startswith("<"):
            continue
        certain = re.fullmatch(_CREDENTIAL_KEYS, key) is not None and len(value) >= 12
        return ("a credential" if certain else "a password"), value, certain
    return None


def redact_secrets(text: str) -> str:
    """The text with every secret replaced by <SECRET>: whole key blocks, the value after `key =`, URL passwords."""
    text = _PEM.sub(PLACEHOLDER, text)
    for _, pattern in _known_formats() if _credential_windows(text) else ():
        text = pattern.sub(lambda m: PLACEHOLDER if len(m.group()) >= 16 else m.group(), text)
    text = _URL_PASSWORD.sub(rf"\1{PLACEHOLDER}\3", text)
    return _ASSIGNMENT.sub(lambda m: m.group().replace(m.group(2), PLACEHOLDER), text)


def digit_runs(text: str) -> list[re.Match[str]]:
    """The runs of digits and separators (`_DIGITS`) in the text, where phone, card and ID numbers can be.

    A regex scan of every character is slow on long rows; for ASCII text one byte translation marks the
    characters a run is made of, and only stretches of 8 or more of them in a row are scanned.
    """
    if not text.isascii():
        return list(_DIGITS.finditer(text))
    mask = text.encode("ascii").translate(_DIGIT_RUN_MASK)
    runs: list[re.Match[str]] = []
    start = mask.find(b"11111111")
    while start >= 0:
        end = mask.find(b"0", start)
        end = len(mask) if end < 0 else end
        runs += _DIGITS.finditer(text, start, end)
        start = mask.find(b"11111111", end)
    return runs


def find_phones(text: str, digit_runs: Sequence[re.Match[str]] | None = None) -> list[str]:
    """Phone numbers, international or in US / UK / German national form (placeholders like 555-0100 skipped).

    `digit_runs` are the text's runs of digits and separators, when the caller has already found them.
    """
    found: list[str] = []
    for cand in _DIGITS.finditer(text) if digit_runs is None else digit_runs:
        if sum(ch.isdigit() for ch in cand.group()) < 7 or _PLACEHOLDER_PHONE.search(cand.group()):
            continue
        import phonenumbers

        # only the stretch around the digits goes to the matcher: scanning whole texts is what costs
        window = text[max(0, cand.start() - 4): cand.end() + 1]
        for region in _PHONE_REGIONS:
            for match in phonenumbers.PhoneNumberMatcher(window, region, leniency=phonenumbers.Leniency.VALID):
                if match.raw_string not in found:
                    found.append(match.raw_string)
            if found:
                return found
    return found


def find_cards(text: str) -> list[str]:
    """Card numbers: 13–19 digits that pass the Luhn check."""
    out = []
    for hit in _CARD.finditer(text):
        digits = re.sub(r"\D", "", hit.group())
        if len(set(digits)) > 2 and _luhn(digits) and digits not in _TEST_CARDS:
            out.append(hit.group())
    return out


def _issue(code: str, severity: str, line: int | None, message: str, fix: str) -> Issue:
    return Issue(code=code, severity=severity, line=line, message=message, fix=fix)  # type: ignore[arg-type]


def privacy_issues(ex: Example, row: RowText | None = None) -> list[Issue]:
    """Secrets (errors when they are a known credential format), emails, phones, ID and card numbers.

    `row` is the row's text already split into words, when the caller has it.
    """
    row = row or RowText(ex.all_text())
    text = row.text
    at = f"Line {ex.line}" if ex.line is not None else "An example"
    out = []
    secret = find_secret(text, row)
    if secret:
        name, hit, certain = secret
        shown = hit[:8] + "…"
        if certain:
            out.append(_issue("secret", "error", ex.line,
                              f"{at} contains what looks like {name} (`{shown}`). A model can memorise it and "
                              "repeat it to anyone.",
                              "Remove it or replace it with a placeholder like <API_KEY>, and revoke the real key; "
                              "--fix replaces it with <SECRET>."))
        else:
            out.append(_issue("secret", "warning", ex.line,
                              f"{at} contains what looks like {name} (`{shown}`); fine if it is a made-up example, "
                              "but a real one would be memorised.",
                              "If it is real, replace it with a placeholder; --fix replaces it with <SECRET>."))
    scan = _URL_PASSWORD.sub(r"\1x\3", text) if "://" in text else text
    emails = [m.group() for m in (_EMAIL.finditer(scan) if "@" in scan else ())
              if not m.group().lower().endswith(_PLACEHOLDER_DOMAINS) and "://" not in scan[:m.start()][-60:]]
    if emails:
        out.append(_issue("pii_email", "warning", ex.line,
                          f"{at} contains an email address ({emails[0]}{' and more' if len(emails) > 1 else ''}).",
                          "Replace real addresses with placeholders like name@example.com unless the model should "
                          "learn them."))
    runs = digit_runs(text)
    phones = find_phones(text, runs)
    if phones:
        out.append(_issue("pii_phone", "warning", ex.line, f"{at} contains a phone number ({phones[0].strip()}).",
                          "Replace real numbers with a placeholder like 555-0100 unless the model should learn them."))
    # social security and card numbers are digit runs too: only the stretches around those are scanned
    numbers = [text[max(0, m.start() - 1): m.end() + 1] for m in runs]
    ids = [hit for part in numbers for hit in _SSN.findall(part)]
    cards = [hit for part in numbers for hit in find_cards(part)]
    if ids or cards:
        what = f"a card number ({cards[0]})" if cards else f"a US social security number ({ids[0]})"
        out.append(_issue("pii_id", "warning", ex.line, f"{at} contains {what}.",
                          "Replace it with a made-up placeholder (e.g. 4111 1111 1111 1111 or 123-45-6789)."))
    return out
