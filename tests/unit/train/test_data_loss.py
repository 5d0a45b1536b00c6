import pytest
import torch

from tools.models.catalog import build_tiny_random, load_tokenizer
from tools.train.batching import group_plan, pack, packed_batches, padded_batch
from tools.train.data import IGNORE, tokenize_chat
from tools.train.loss import lm_loss

CHAT = [
    {"role": "system", "content": "You write user stories."},
    {"role": "user", "content": "Password reset"},
    {"role": "assistant", "content": "As a user, I want to reset my password."},
    {"role": "user", "content": "Shorter"},
    {"role": "assistant", "content": "Reset password story."},
]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny-random")


def test_labels_cover_assistant_turns_and_their_end_of_turn_only(tok):
    ex = tokenize_chat(tok, CHAT, max_len=512)
    taught = [i for i, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != IGNORE]
    assert tok.decode(taught) == "As a user, I want to reset my password.<|im_end|>Reset password story.<|im_end|>"
    assert taught.count(tok.eos_token_id) == 2
    # the end-of-turn tokens of system and user turns are not taught
    assert ex.input_ids.count(tok.eos_token_id) == 5
    assert tokenize_chat(tok, CHAT, max_len=10).input_ids == ex.input_ids[:10]


def _examples(tok, n=6):
    out = []
    for i in range(n):
        msgs = [{"role": "user", "content": f"question {i} " + "word " * (i * 3)},
                {"role": "assistant", "content": f"answer number {i} " + "more " * i}]
        out.append(tokenize_chat(tok, msgs, max_len=256))
    return out


def test_packed_loss_equals_per_example_loss(tok):
    model = build_tiny_random(seed=1)
    model.eval()
    examples = _examples(tok)
    with torch.no_grad():
        per = [lm_loss(model, padded_batch([e], tok.pad_token_id)) for e in examples]
        total = sum(loss.item() * n for loss, n in per)
        count = sum(n for _, n in per)
        packed, n_packed = lm_loss(model, pack(examples))
        padded, n_padded = lm_loss(model, padded_batch(examples, tok.pad_token_id))
    assert n_packed == n_padded == count
    assert packed.item() == pytest.approx(total / count, rel=1e-4)
    assert padded.item() == pytest.approx(total / count, rel=1e-4)


def test_chunked_loss_matches_full_logits_and_gradients(tok):
    model = build_tiny_random(seed=2)
    batch = padded_batch(_examples(tok), tok.pad_token_id)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    out.loss.backward()
    ref = model.model.layers[0].mlp.up_proj.weight.grad.clone()
    model.zero_grad()
    loss, _ = lm_loss(model, batch, chunk_size=7)
    loss.backward()
    assert loss.item() == pytest.approx(out.loss.item(), rel=1e-4)
    assert torch.allclose(model.model.layers[0].mlp.up_proj.weight.grad, ref, atol=1e-6)


def test_packing_keeps_every_token_and_respects_the_budget(tok):
    examples = _examples(tok)
    batches = packed_batches(examples, max_tokens=200, seed=0)
    assert sum(b["input_ids"].shape[1] for b in batches) == sum(len(e) for e in examples)
    assert all(b["input_ids"].shape[1] <= 200 for b in batches)
    again = packed_batches(examples, 200, 0)
    assert [b["input_ids"].tolist() for b in batches] == [b["input_ids"].tolist() for b in again]
    grouped = [padded_batch([examples[i] for i in idx], tok.pad_token_id)
               for idx in group_plan([len(e) for e in examples], 2, seed=0)]
    assert sorted(int(b["attention_mask"].sum()) for b in grouped) == sorted(
        len(examples[i]) + len(examples[i + 1]) for i in (0, 2, 4))


@pytest.mark.parametrize("family", ["llama3", "phi3", "gemma", "chatml"])
def test_each_template_family_teaches_its_own_end_of_turn(family):
    from tools.models.catalog import CATALOG, tiny_random_tokenizer
    from tools.models.chat_templates import CHAT_TEMPLATES

    entry = next(e for e in CATALOG.values() if e.template_family == family)
    tok = tiny_random_tokenizer()
    specials = {"llama3": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
                "phi3": ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>"],
                "gemma": ["<bos>", "<start_of_turn>", "<end_of_turn>"], "chatml": []}[family]
    tok.add_special_tokens({"additional_special_tokens": specials})
    tok.chat_template = CHAT_TEMPLATES[family]
    tok.bos_token = {"llama3": "<|begin_of_text|>", "gemma": "<bos>"}.get(family, tok.bos_token)
    tok.eos_token = entry.stop_tokens[0]
    ex = tokenize_chat(tok, CHAT[1:3], max_len=512)
    taught = [i for i, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != IGNORE]
    assert tok.decode(taught).replace(" ", "") == "Asauser,Iwanttoresetmypassword." + entry.stop_tokens[0]


def test_a_template_without_a_system_role_gets_the_system_text_in_the_first_user_turn(tok):
    strict = load_tokenizer("tiny-random")
    strict.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                            "{{ raise_exception('System role not supported') }}{% endif %}"
                            "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    ex = tokenize_chat(strict, CHAT, max_len=512)
    text = strict.decode(ex.input_ids)
    assert text.startswith("<|im_start|>user\nYou write user stories.\n\nPassword reset<|im_end|>")
    assert ex.labels.count(strict.eos_token_id) == 2
