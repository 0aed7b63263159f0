"""Tiny models built from configs and saved to folders, plus a small tokenizer trained on SST-2 text.

Everything here is offline and takes well under a second per model.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from torch import nn

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<eos>"]


def sst2_sentences(n: int = 2000, split: str = "train") -> list[tuple[str, int]]:
    """The first n (sentence, label) rows of ../shared/data/sst2."""
    with open(DATA / "sst2" / f"{split}.tsv", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(row["sentence"], int(row["label"])) for _, row in zip(range(n), reader)]


def make_tokenizer(folder: Path | None = None, vocab_size: int = 800):
    """A WordPiece tokenizer trained on SST-2 sentences, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS)
    tok.train_from_iterator([s for s, _ in sst2_sentences(3000)], trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", eos_token="<eos>",
    )
    if folder is not None:
        fast.save_pretrained(folder)
    return fast


def tiny_config(kind: str, vocab_size: int):
    from transformers import BertConfig, GPT2Config, LlamaConfig, T5Config

    if kind == "bert":
        return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=128)
    if kind == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=128,
                          bos_token_id=5, eos_token_id=5, pad_token_id=0)
    if kind == "llama":
        return LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                           bos_token_id=2, eos_token_id=5, pad_token_id=0)
    if kind == "chat":  # wide enough for bitsandbytes' 4-bit blocks (64 values) on every Linear
        return LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                           bos_token_id=2, eos_token_id=5, pad_token_id=0, tie_word_embeddings=True)
    if kind == "t5":
        return T5Config(vocab_size=vocab_size, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2,
                        num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=5)
    raise ValueError(kind)


_ARCH = {
    "bert": "BertForSequenceClassification",
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "t5": "T5ForConditionalGeneration",
    "chat": "LlamaForCausalLM",
}

# ChatML, as SmolLM2 and Qwen write it, with {% generation %} marks so transformers can return the assistant mask
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ message['content'] }}<|im_end|>{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_chat_tokenizer(folder: Path | None = None, template: str | None = CHATML):
    """The SST-2 WordPiece tokenizer with ChatML's two special tokens and (unless ``template=None``) a chat
    template: a stand-in for a chat model's tokenizer."""
    tok = make_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.eos_token = "<|im_end|>" if template else "<eos>"
    if template:
        tok.chat_template = template
    if folder is not None:
        tok.save_pretrained(folder)
    return tok


def save_tiny(kind: str, folder: Path, tokenizer) -> Path:
    """Build a tiny model of ``kind`` with random weights and save it (with the tokenizer) to ``folder``."""
    import transformers

    torch.manual_seed(0)
    config = tiny_config(kind, len(tokenizer))
    model = getattr(transformers, _ARCH[kind])(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class TinyCNN(nn.Module):
    """A hand-written CNN with BatchNorm: no transformers, no config."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(self.features(x))
