"""Chat data: every shape becomes messages, rendered by the chat template, with the loss on the assistant's tokens
(checked token by token against transformers' own assistant mask); the preview; packing."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import nbtune
from nbtune.core.common.errors import DataError, TrainConfigError
from nbtune.core.data import chat
from nbtune.core.data.features import Features
from nbtune.core.data.packing import pack_features, packed_collator

CONVERSATION = [
    {"role": "system", "content": "be kind"},
    {"role": "user", "content": "hello there"},
    {"role": "assistant", "content": "hi friend"},
    {"role": "user", "content": "how are you"},
    {"role": "assistant", "content": "very well thanks for asking"},
]
CHATS = [{"messages": CONVERSATION},
         {"messages": [{"role": "user", "content": "a good film?"},
                       {"role": "assistant", "content": "yes a very good film indeed"}]}] * 8


@pytest.fixture(scope="module")
def chat_tok(chat_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(chat_dir)


def _trained_text(tok, encoded):
    return tok.decode([t for t, label in zip(encoded.input_ids, encoded.labels) if label != chat.IGNORE])


def test_the_loss_mask_is_transformers_assistant_mask_token_by_token(chat_tok):
    reference = chat_tok.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True,
                                             return_assistant_tokens_mask=True)
    encoded = chat.encode(chat_tok, chat_tok.chat_template, CONVERSATION, "assistant", None)
    assert encoded.input_ids == list(reference["input_ids"])
    assert [int(label != chat.IGNORE) for label in encoded.labels] == list(reference["assistant_masks"])
    assert [label for label in encoded.labels if label != chat.IGNORE] == \
        [t for t, m in zip(reference["input_ids"], reference["assistant_masks"]) if m]
    assert _trained_text(chat_tok, encoded) == "hi friend <|im_end|> very well thanks for asking <|im_end|>"
    last = chat.encode(chat_tok, chat_tok.chat_template, CONVERSATION, "last", None)
    assert _trained_text(chat_tok, last) == "very well thanks for asking <|im_end|>"
    every = chat.encode(chat_tok, chat_tok.chat_template, CONVERSATION, "all", None)
    assert every.labels == every.input_ids


@pytest.mark.parametrize("rows, columns", [
    ([{"prompt": "a good film?", "response": "yes indeed"}], {}),
    ([{"instruction": "answer", "input": "a good film?", "output": "yes indeed"}], {}),
    ([{"conversations": [{"from": "human", "value": "a good film?"}, {"from": "gpt", "value": "yes indeed"}]}], {}),
    ([{"q": "a good film?", "a": "yes indeed"}], {"prompt": "q", "response": "a"}),
])
def test_single_turn_shapes_become_messages_with_the_response_trained(chat_tok, rows, columns):
    table = pd.DataFrame(rows)
    [encoded] = chat.encode_table(chat_tok, table, columns, None, "assistant", None)
    assert _trained_text(chat_tok, encoded) == "yes indeed <|im_end|>"
    assert "<|im_start|>user" in encoded.text and "a good film?" in encoded.text


def test_a_system_column_joins_each_conversation(chat_tok):
    table = pd.DataFrame([{"prompt": "hi", "response": "hello", "system": "be brief"}])
    [encoded] = chat.encode_table(chat_tok, table, {}, None, "assistant", None)
    assert encoded.text.startswith("<|im_start|>system\nbe brief<|im_end|>")


def test_a_tokenizer_without_template_needs_a_named_one_for_conversations(tmp_path):
    from tiny_models import make_chat_tokenizer, save_tiny

    folder = save_tiny("chat", tmp_path / "base", make_chat_tokenizer(template=None))
    s = nbtune.load(folder)
    with pytest.raises(DataError, match="no chat template.*chat_template="):
        s.train(CHATS, max_steps=1, log=False, save_run=False)
    assert len(s.history.rows) == 0
    s.train(CHATS, max_steps=2, batch_size=4, log=False, save_run=False, chat_template="chatml")
    assert s.tokenizer.chat_template == chat.NAMED_TEMPLATES["chatml"]  # generate() now renders as trained
    assert any("'chatml' chat template" in n for n in s.notes)
    # prompt/response pairs still train without any template: prompt, newline, response, end of sequence
    plain = nbtune.load(folder)
    [encoded] = chat.encode_table(plain.tokenizer, pd.DataFrame([{"prompt": "a good film?", "response": "yes"}]),
                                  {}, None, "assistant", None)
    assert _trained_text(plain.tokenizer, encoded) == "yes <eos>"


def test_data_with_every_label_masked_is_refused_and_nothing_changes(chat_dir):
    s = nbtune.load(chat_dir)
    before = {n: p.clone() for n, p in s.model.named_parameters()}
    with pytest.raises(DataError, match="all its labels masked.*max_length=8 cuts off every assistant turn"):
        s.train(CHATS, max_steps=1, max_length=8, log=False, save_run=False)
    assert all(torch.equal(p, before[n]) for n, p in s.model.named_parameters())
    assert len(s.history.rows) == 0 and s.training.position is None
    with pytest.raises(DataError, match="no assistant message"):
        s.train([{"messages": [{"role": "user", "content": "hi"}]}], max_steps=1, log=False, save_run=False)


def test_the_preview_marks_trained_masked_and_cut_text(chat_dir):
    s = nbtune.load(chat_dir)
    preview = s.preview(CHATS, n=2, max_length=40)
    assert preview.count == 16 and preview.truncated == 8 and preview.no_trained_tokens == 0
    assert preview.length_stats["max"] > 40 >= preview.examples[0].tokens
    first = preview.examples[0]
    assert first.truncated and [p.text for p in first.pieces if p.trained][0] == "hi friend<|im_end|>"
    assert any(p.cut and "thanks for asking" in p.text for p in first.pieces)
    assert not any(p.trained for p in first.pieces if "hello there" in p.text)
    text, html = repr(preview), preview._repr_html_()
    assert "[[hi friend<|im_end|>]]" in text and "cut by max_length=40" in text
    assert "hi friend&lt;|im_end|&gt;</span>" in html and "line-through" in html
    last = s.preview(CHATS, n=1, loss_on="last")
    assert [p.text for p in last.examples[0].pieces if p.trained] == ["very well thanks for asking<|im_end|>"]


def _rows(tok, texts):
    out = []
    for text in texts:
        ids = tok(text)["input_ids"]
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)})
    return Features(out, [len(r["input_ids"]) for r in out])


def test_packed_rows_keep_examples_apart_and_give_the_same_loss(chat_dir, chat_tok):
    s = nbtune.load(chat_dir)
    model = s.model.eval()
    features = _rows(chat_tok, ["the movie was great", "a dull and boring film with bad acting", "lovely", "ok then"])
    packed = pack_features(features, max_length=24)
    assert len(packed) < len(features) and all(n <= 24 for n in packed.lengths)
    assert sum(packed.lengths) == sum(features.lengths)
    batch = packed_collator()(packed.rows)
    assert "attention_mask" not in batch
    with torch.no_grad():
        logits = model(**batch, use_cache=False).logits  # as the task's forward calls it
        # each example alone gives the logits it has inside its packed row: nothing leaks across examples
        for row, (ids, positions) in enumerate(zip(batch["input_ids"], batch["position_ids"])):
            starts = [k for k, p in enumerate(positions.tolist()) if p == 0] + [len(positions)]
            for a, b in zip(starts, starts[1:]):
                if batch["labels"][row, a + 1:b].eq(-100).all():
                    continue  # the padding segment
                alone = model(input_ids=ids[a:b].unsqueeze(0)).logits[0]
                assert torch.allclose(logits[row, a:b], alone, atol=1e-5)
        # the packed loss is the token-weighted mean of the examples' own losses
        from torch.nn.functional import cross_entropy

        token_losses, tokens = 0.0, 0
        for r in features.rows:
            ids = torch.tensor([r["input_ids"]])
            out = model(input_ids=ids, labels=ids)
            n = ids.shape[1] - 1
            token_losses, tokens = token_losses + float(out.loss) * n, tokens + n
        shift_logits, shift_labels = logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1)
        packed_loss = float(cross_entropy(shift_logits, shift_labels, ignore_index=-100))
    assert packed_loss == pytest.approx(token_losses / tokens, rel=1e-5)


def test_training_with_packing_runs_fewer_rows_and_learns(chat_dir):
    s = nbtune.load(chat_dir)
    result = s.train(CHATS, epochs=3, batch_size=2, lr=1e-2, log=False, save_run=False, packing=True, max_length=128)
    losses = s.history.to_pandas()["loss"].dropna().tolist()
    assert losses[-1] < losses[0]
    steps_packed = len(losses)
    s2 = nbtune.load(chat_dir)
    s2.train(CHATS, epochs=3, batch_size=2, lr=1e-2, log=False, save_run=False)
    assert steps_packed < len(s2.history.to_pandas()["loss"].dropna())
    assert result.outcome == "completed"
    with pytest.raises(TrainConfigError, match="packing=True fills rows of max_length"):
        s.train(CHATS, packing=True, max_length=None, log=False, save_run=False)
    classifier = nbtune.load(nbtune.default_model_path(), task="text-classification", num_labels=2)
    with pytest.raises(TrainConfigError, match="packing=True is for causal-lm"):
        classifier.train(pd.DataFrame({"text": ["good", "bad"], "label": [1, 0]}), packing=True, log=False,
                         save_run=False)
