"""Small datasets that ship with nbtune, for the quickstart and tutorials.

``reviews.csv`` holds 262 short review sentences (131 positive, 131 negative) about films, food, hotels,
gadgets and services, written for this project (not copied from any dataset), licensed with nbtune.

The offline stand-ins for the tutorials' public datasets (``public.py``) are written or generated for this
project too: ``wnut17_sample.conll`` (40 tweet-like sentences, WNUT-17's tags), ``scitldr_sample.jsonl`` (16
short abstracts with one-line summaries), ``gsm8k_sample.jsonl`` (48 template word problems with worked answers
in GSM8K's format); the sentiment stand-in is ``reviews.csv``.
"""

from __future__ import annotations

from nbtune.examples.bundled import HERE, reviews
from nbtune.examples.public import load_public

__all__ = ["HERE", "load_public", "reviews"]

