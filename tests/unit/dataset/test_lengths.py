"""Lengths by tokens: estimates close to a real tokenizer in English and Chinese, outliers by category, placeholders."""

from __future__ import annotations

import random

import pytest

from tests.unit.dataset.conftest import stories
from tools.dataset.checks import analyse
from tools.dataset.lengths import estimate_text
from tools.dataset.model import Example

ENGLISH = ("Write a user story for the password reset flow. As a returning customer who forgot my password, I want "
           "to reset it from the login page, so that I can get back into my account without calling support. "
           "Acceptance criteria: the link expires after 30 minutes; the new password must differ from the last "
           "three; users see a confirmation email. Risks: phishing emails that imitate ours, and rate limits on the "
           "email provider.")
CHINESE = ("为密码重置流程编写一个用户故事。作为一个忘记密码的老用户，我希望能从登录页面重置密码，"
           "这样我就可以不用联系客服而重新进入我的账户。验收标准：链接在三十分钟后失效；"
           "新密码不能与最近三次使用的密码相同；用户会收到一封确认邮件。风险：冒充我们的"
           "钓鱼邮件，以及邮件服务商的发送频率限制。")


@pytest.fixture(scope="module")
def minilm():
    from transformers import AutoTokenizer

    from tools.embeddings import minilm_path

    return AutoTokenizer.from_pretrained(str(minilm_path()))


@pytest.mark.parametrize("text", [ENGLISH, CHINESE, f"{ENGLISH} {CHINESE}"], ids=["english", "chinese", "mixed"])
def test_estimate_is_within_a_quarter_of_a_real_tokenizer(minilm, text):
    real = len(minilm(text, add_special_tokens=False)["input_ids"])
    assert abs(estimate_text(text) - real) <= 0.25 * real


def test_a_long_chinese_answer_is_too_long_for_the_context():
    # 12,000 characters is about 12,000 tokens: far past 4,096, though it has almost no spaces
    rows = stories(12) + [Example.chat(("user", "写一份详细的产品需求文档"), ("assistant", CHINESE * 90), line=13)]
    issues, _ = analyse(rows, context=4096)
    assert [(i.code, i.line) for i in issues if i.code == "too_long"] == [("too_long", 13)]


def test_ordinary_chinese_answers_are_not_called_short():
    rows = [Example.chat(("user", f"Write a user story for feature {i}"), ("assistant", "word " * 60 + f"{i}"))
            for i in range(20)]
    rows.append(Example.chat(("user", "Write a user story for payments"), ("assistant", CHINESE), line=21))
    issues, _ = analyse(rows)
    assert [i for i in issues if i.code == "length_outlier"] == []


def test_a_realistic_mix_of_answer_lengths_gives_few_warnings():
    # alpaca-like: one-word labels, one-line answers and long essays all ordinary in one file
    rng = random.Random(3)
    rows = []
    for i in range(400):
        n = int(rng.lognormvariate(3.5, 1.2)) + 1
        rows.append(Example.chat(("user", f"Task {i}: {rng.choice(['classify', 'explain', 'rewrite'])} this"),
                                 ("assistant", " ".join(f"w{i}x{k}" for k in range(n)))))
    issues, _ = analyse(rows)
    assert len([i for i in issues if i.code == "length_outlier"]) <= 0.02 * len(rows)


def test_lengths_are_judged_within_each_kind_of_task():
    # user stories are long and OKR answers short here: neither kind is unusual, but a one-line user story is
    long = [Example.chat(("user", f"Write a user story for feature {i}"),
                         ("assistant", " ".join(f"s{i}k{k}" for k in range(200)))) for i in range(25)]
    short = [Example.chat(("user", f"Write OKRs for team {i}"), ("assistant", f"Objective: ship {i} and grow."))
             for i in range(25)]
    odd = Example.chat(("user", "Write a user story for exports"), ("assistant", "As a user I export."), line=99)
    issues, _ = analyse([*long, *short, odd])
    assert [(i.code, i.line) for i in issues if i.code == "length_outlier"] == [("length_outlier", 99)]


def test_a_short_example_with_two_words_changed_is_a_near_duplicate():
    first = "Please summarise the weekly sync for the mobile team and list every open risk with its owner and due date"
    second = first.replace("mobile", "platform").replace("owner", "lead")
    assert len(first.split()) == 20
    rows = stories(12) + [Example.chat(("user", first), ("assistant", "Here is the summary of the sync."), line=13),
                          Example.chat(("user", second), ("assistant", "Here is the summary of the sync."), line=14)]
    issues, _ = analyse(rows)
    assert [(i.code, i.line) for i in issues if i.code == "near_duplicate"] == [("near_duplicate", 14)]
    assert "line 13" in next(i.message for i in issues if i.code == "near_duplicate")


@pytest.mark.parametrize("text", ["Hi {{customer_name}}, your order ships today.",
                                  "Dear {name}, thanks for the feedback."])
def test_unfilled_template_placeholders_are_flagged_with_the_fix(text):
    rows = [Example.chat(("user", "Write a shipping email"), ("assistant", text), line=3)]
    found = [i for i in analyse(rows)[0] if i.code == "template_placeholder"]
    assert len(found) == 1
    assert found[0].line == 3
    assert found[0].severity == "warning"
    assert "{" in found[0].message
    assert "Replace" in found[0].fix


@pytest.mark.parametrize("text", ['Use `f"Hello {name}"` in Python.', "```python\nprint(f'{name}')\n```",
                                  'Return {"name": "Ada"} as JSON.'])
def test_code_and_json_braces_are_not_placeholders(text):
    rows = [Example.chat(("user", "Show me"), ("assistant", text))]
    assert [i for i in analyse(rows)[0] if i.code == "template_placeholder"] == []


def test_a_tokenizer_that_is_not_on_the_machine_falls_back_to_the_estimate(monkeypatch):
    from tools.dataset import lengths
    from tools.errors import UsageError

    def missing(model):
        raise UsageError(f"The tokenizer of '{model}' is not on this machine.", "mtw download it")

    monkeypatch.setattr(lengths, "tokenizer_counter", missing)
    _, stats = analyse(stories(3), model="tiny-random")
    assert stats["token_counting"].startswith("estimate")
    assert "not on this machine" in stats["token_counting"]
