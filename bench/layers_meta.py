"""Benchmark: listing a Llama-2-70B-sized model built on the meta device, and opening the freezing widget
on a 7B-sized one. Targets: both under 2 s.

    python bench/layers_meta.py
"""

from __future__ import annotations

import tempfile
import time

from transformers import LlamaConfig

import nbtune
from nbtune.ui import LayerFreezer

SIZES = {
    "llama-2-70b": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                        num_key_value_heads=8, vocab_size=32000),
    "llama-2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       vocab_size=32000),
}


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    for name, dims in SIZES.items():
        with tempfile.TemporaryDirectory() as folder:
            LlamaConfig(architectures=["LlamaForCausalLM"], **dims).save_pretrained(folder)
            s, t_load = timed(lambda: nbtune.load(folder, weights=False, tokenizer=False))
            tree, t_tree = timed(s.layers)
            _, t_text = timed(lambda: repr(tree))
            _, t_html = timed(tree._repr_html_)
            _, t_sum = timed(lambda: s.summary(batch_size=1, seq_len=4096))
            _, t_widget = timed(lambda: LayerFreezer(s))
            print(f"{name}: {tree[''].total_params / 1e9:.2f}B params; build on meta {t_load:.2f}s, layers() {t_tree:.2f}s, "
                  f"text {t_text:.2f}s, html {t_html:.2f}s, summary {t_sum:.2f}s, widget {t_widget:.2f}s "
                  f"(target: layers and widget < 2 s)")


if __name__ == "__main__":
    main()
