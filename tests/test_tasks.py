"""Issue-5 tasks on tiny models: token classification, extractive QA, seq2seq, masked LM, generation,
multi-stage recipes; metrics checked on hand-made predictions with known scores."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import nbtune
from nbtune.core.data.features import DataError, read_conll
from nbtune.core.tasks.question_answering import QuestionAnsweringTask, squad_scores
from nbtune.core.tasks.seq2seq import text_scores
from nbtune.core.tasks.token_classification import entity_scores
from nbtune.core.training.config import TrainConfig

from tiny_models import DATA

FAST = dict(batch_size=8, log=False)


@pytest.fixture
def tiny(tiny_dirs):
    def make(kind: str, task: str, **kw):
        torch.manual_seed(0)
        return nbtune.load(tiny_dirs[kind], task=task, **kw)
    return make


# -- token classification --------------------------------------------------------------------------------


def test_conll_reader_on_wnut17():
    train = read_conll(DATA / "wnut17" / "wnut17train.conll")
    assert len(train) == 3394 and sum(len(t) for t in train["tokens"]) == 62730
    tags = {t for row in train["tags"] for t in row}
    assert len(tags) == 13 and "O" in tags and "B-person" in tags


def test_conll_malformed_line_is_named(tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("Paris\tB-location\nis\tO\n\nlovely\n")
    with pytest.raises(DataError, match=r"bad.conll, line 4: expected 'token<TAB>tag', got 'lovely'"):
        read_conll(bad)


NER = [{"tokens": ["alice", "met", "bob", "in", "paris"], "tags": ["B-person", "O", "B-person", "O", "B-location"]},
       {"tokens": ["the", "film", "was", "great"], "tags": ["O", "O", "O", "O"]},
       {"tokens": ["bob", "loves", "new", "york"], "tags": ["B-person", "O", "B-location", "I-location"]}] * 8


def test_token_classification_learns_and_names_tags(tiny):
    s = tiny("bert", "token-classification")
    assert s.model.config.num_labels == 2
    run = s.train(pd.DataFrame(NER), eval=NER[:3], epochs=15, lr=1e-2, **FAST)
    assert s.model.config.num_labels == 4  # the tag set was read from the data; the head resized with it
    assert s.model.config.id2label[0] == "O" and "B-location" in s.model.config.label2id
    losses = s.history.losses()
    assert losses[-1] < losses[0] and run.metrics["f1"] > 0.5


def test_sub_word_alignment(tiny):
    from nbtune.core.tasks.token_classification import TokenClassificationTask

    s = tiny("bert", "token-classification", labels=["O", "B-thing"])
    features = TokenClassificationTask(s).prepare(s, pd.DataFrame([{"tokens": ["unbelievably", "x"],
                                                                    "tags": ["B-thing", "O"]}]), TrainConfig())
    enc = s.tokenizer(["unbelievably", "x"], is_split_into_words=True)
    word_ids = enc.word_ids()
    labels = features.rows[0]["labels"]
    first = word_ids.index(0)
    assert labels[first] == 1 and all(labels[i] == -100 for i, w in enumerate(word_ids) if w == 0 and i != first)
    assert labels[0] == -100 and labels[-1] == -100  # [CLS], [SEP]
    assert word_ids.count(0) > 1  # the word really was split


def test_unknown_tag_at_evaluation_is_an_error(tiny):
    s = tiny("bert", "token-classification")
    s.train(NER, epochs=1, **FAST)
    weights = {n: p.clone() for n, p in s.model.named_parameters()}
    with pytest.raises(DataError, match=r"The data has a class not among the tags the model was trained on: 'B-product'"):
        s.evaluate([{"tokens": ["iphone"], "tags": ["B-product"]}])
    assert all(torch.equal(p, weights[n]) for n, p in s.model.named_parameters())


@pytest.mark.parametrize("rows, pattern", [
    ([{"tokens": "alice met bob", "tags": ["B-person", "O", "B-person"]}],
     r"Column 'tokens' holds text where token classification takes a list of words.*str\.split"),
    ([NER[0], {"tokens": ["x"], "tags": None}], r"1 of 2 examples have no tags in column 'tags'.*row 1"),
    ([NER[0], {"tokens": [], "tags": []}], r"1 of 2 examples have no words in column 'tokens'"),
])
def test_token_data_refusals_name_their_cause(tiny, rows, pattern):
    s = tiny("bert", "token-classification")
    with pytest.raises(DataError, match=pattern):
        s.train(pd.DataFrame(rows), epochs=1, **FAST)


def test_token_lists_from_datasets_with_int_tags(tiny):
    import datasets

    s = tiny("bert", "token-classification", labels=["O", "B-person", "B-location", "I-location"])
    ds = datasets.Dataset.from_list([{"tokens": r["tokens"], "ner_tags": [s.model.config.label2id.get(t, 0)
                                                                          for t in r["tags"]]} for r in NER])
    assert s.train(ds, epochs=1, **FAST).steps == 3


def test_entity_scores_known_values():
    names = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC"}
    gold = [[1, 2, 0, 3], [0, 1]]
    pred = [[1, 2, 0, 0], [0, 3]]  # one of three entities right, two predicted
    scores = entity_scores(gold, pred, names)
    assert scores["precision"] == pytest.approx(1 / 2) and scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(0.4) and scores["accuracy"] == pytest.approx(4 / 6)


# -- extractive QA -------------------------------------------------------------------------------------------

QA = [
    {"question": "who wrote the book?", "context": "the book was written by alice in 1999 .",
     "answers": {"text": ["alice"], "answer_start": [24]}},
    {"question": "when was it written?", "context": "the book was written by alice in 1999 .",
     "answers": {"text": ["1999"], "answer_start": [33]}},
    {"question": "what is green?", "context": "the grass is green and the sky is blue .",
     "answers": {"text": ["the grass"], "answer_start": [0]}},
] * 6


def test_qa_learns_and_scores(tiny):
    s = tiny("bert", "question-answering")
    before = s.evaluate(QA[:3])
    run = s.train(QA, eval=QA[:3], epochs=12, lr=1e-2, **FAST)
    assert run.metrics["loss"] < before["loss"]
    assert run.metrics["f1"] >= before["f1"] and run.metrics["exact_match"] >= 2 / 3


def test_qa_long_context_split_with_stride_maps_the_answer(tiny):
    s = tiny("bert", "question-answering")
    filler = " ".join(["the film was long and slow ."] * 12)
    context = f"{filler} the director was carol . {filler}"
    example = {"question": "who was the director?", "context": context, "answer": "carol"}
    cfg = TrainConfig(max_length=48, stride=16)
    feats = QuestionAnsweringTask().prepare(s, pd.DataFrame([example]), cfg)
    assert len(feats) > 3  # several windows
    hits = [r for r in feats.rows if r["start_positions"] != 0]
    assert hits
    for row, offsets in zip(feats.rows, feats.meta["offsets"]):
        if row["start_positions"]:
            s_char = offsets[row["start_positions"]][0]
            e_char = offsets[row["end_positions"]][1]
            assert context[s_char:e_char] == "carol"


def test_qa_answer_not_in_context(tiny):
    s = tiny("bert", "question-answering")
    with pytest.raises(DataError, match="Example 1: the answer 'bob' does not appear in its context"):
        s.train([{"question": "who?", "context": "alice wrote it .", "answer": "alice"},
                 {"question": "who?", "context": "alice wrote it .", "answer": "bob"}], **FAST)
    with pytest.raises(DataError, match="Example 0: the answer 'alice' is not at character 3"):
        s.evaluate([{"question": "who?", "context": "it was alice .", "answers": {"text": ["alice"], "answer_start": [3]}}])


def test_squad_scores_known_values():
    scores = squad_scores(["The Alice", "in 1999", "blue"], [["alice"], ["1999", "in 1999"], ["green grass"]])
    assert scores["exact_match"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert squad_scores(["alice smith"], [["alice"]])["f1"] == pytest.approx(2 / 3)


@pytest.mark.slow
def test_qa_on_the_real_encoder(minilm_dir):
    torch.manual_seed(0)
    s = nbtune.load(minilm_dir, task="question-answering")
    before = s.evaluate(QA[:3])
    run = s.train(QA, eval=QA[:3], epochs=4, lr=5e-4, **FAST)
    assert run.metrics["loss"] < before["loss"]


# -- seq2seq --------------------------------------------------------------------------------------------------


def _scitldr(n: int):
    return pd.read_json(DATA / "scitldr" / "train.jsonl", lines=True).head(n)


def test_seq2seq_on_scitldr_rows(tiny):
    s = tiny("t5", "seq2seq")
    table = _scitldr(16)
    from nbtune.core.tasks.seq2seq import Seq2SeqTask

    feats = Seq2SeqTask().prepare(s, table, TrainConfig(max_length=64))
    batch = Seq2SeqTask().collator(s, TrainConfig())([feats.rows[0], feats.rows[1]])
    assert (batch["labels"] == -100).any() and (batch["labels"] != 0).all()  # padding ignored, not learned
    assert "decoder_input_ids" in batch
    before = s.evaluate(table, max_length=64)
    run = s.train(table, eval=table, epochs=4, lr=1e-2, max_length=64, max_new_tokens=8, **FAST)
    assert run.metrics["loss"] < before["loss"]
    assert {"rouge1", "rouge2", "rougeL", "bleu"} <= set(run.metrics)


def test_seq2seq_multi_reference_dev_and_empty_target(tiny):
    s = tiny("t5", "seq2seq")
    dev = pd.read_json(DATA / "scitldr" / "dev.jsonl", lines=True).head(4)
    assert max(len(t) for t in dev["target"]) > 1
    metrics = s.evaluate(dev, max_length=64)
    assert "rouge1" in metrics
    with pytest.raises(DataError, match="Example 1 has an empty target"):
        s.train(pd.DataFrame({"source": ["a", "b"], "target": ["x", ""]}), **FAST)


def test_text_scores_known_values():
    same = text_scores(["the cat sat on the mat"], [["the cat sat on the mat"]])
    assert same["rouge1"] == pytest.approx(1.0) and same["rougeL"] == pytest.approx(1.0) and same["bleu"] == pytest.approx(100.0)
    none = text_scores(["dogs bark loudly"], [["the cat sat"]])
    assert none["rouge1"] == 0.0 and none["bleu"] == 0.0
    best_of_two = text_scores(["the cat sat"], [["a dog ran", "the cat sat"]])
    assert best_of_two["rouge1"] == pytest.approx(1.0)


# -- masked LM ---------------------------------------------------------------------------------------------------


def test_masked_lm_forms_and_learning(tiny, tmp_path):
    s = tiny("bert", "masked-lm")
    texts = [line.split("\t")[0] for line in (DATA / "sst2" / "dev.tsv").read_text().splitlines()[1:65]]
    (tmp_path / "domain.txt").write_text("\n".join(texts))
    before = s.evaluate(tmp_path / "domain.txt")
    assert before == s.evaluate(pd.DataFrame({"text": texts}))  # evaluation masks are fixed: comparable numbers
    run = s.train(texts, eval=texts, epochs=3, lr=5e-3, **FAST)
    assert run.metrics["perplexity"] < before["perplexity"]


def test_masking_rate_is_fifteen_percent(tiny):
    from nbtune.core.tasks.masked_lm import MaskedLMTask

    s = tiny("bert", "masked-lm")
    texts = [line.split("\t")[0] for line in (DATA / "sst2" / "dev.tsv").read_text().splitlines()[1:300]]
    task, cfg = MaskedLMTask(), TrainConfig()
    feats = task.prepare(s, pd.DataFrame({"text": texts}), cfg)
    batch = task.eval_collator(s, cfg)(feats.rows)
    real = (batch["attention_mask"] == 1).sum() - 2 * len(texts)
    rate = float((batch["labels"] != -100).sum()) / float(real)
    assert 0.12 < rate < 0.18


# -- generation --------------------------------------------------------------------------------------------------


def test_generate_causal_and_seq2seq(tiny):
    g = tiny("gpt2", "causal-lm")
    out = g.generate(["a good film", "the plot"], max_new_tokens=4)
    assert len(out) == 2 and all(isinstance(o, str) for o in out)
    t = tiny("t5", "seq2seq")
    assert len(t.generate("summarise this", max_new_tokens=3)) == 1
    b = tiny("bert", "text-classification")
    with pytest.raises(nbtune.NbtuneError, match="language models .causal-lm, seq2seq"):
        b.generate("x")


@pytest.mark.slow
def test_generate_uses_the_chat_template(smollm_gguf):
    s = nbtune.load(smollm_gguf)
    answer = s.generate("What is the capital of France? Answer in one word.", max_new_tokens=8)[0]
    assert "paris" in answer.lower()


# -- multi-stage recipes ----------------------------------------------------------------------------------------


def test_domain_adaptation_then_task_keeps_the_encoder(tiny):
    s = tiny("bert", "masked-lm")
    texts = [line.split("\t")[0] for line in (DATA / "sst2" / "dev.tsv").read_text().splitlines()[1:65]]
    s.train(texts, epochs=1, lr=5e-3, **FAST)
    adapted = {k: v.clone() for k, v in s.model.bert.state_dict().items()}
    notes = s.switch_task("text-classification", labels=["neg", "pos"])
    assert s.task == "text-classification" and type(s.model).__name__ == "BertForSequenceClassification"
    body = s.model.bert.state_dict()
    assert all(torch.equal(body[k], v) for k, v in adapted.items())  # stage 1 is stage 2's starting point
    assert any("pooler" in n for n in notes)
    rows = [{"text": t, "label": "pos" if i % 2 else "neg"} for i, t in enumerate(texts)]
    run = s.train(rows, epochs=1, lr=5e-3, **FAST)
    assert run.steps == 8 and s.history.losses()  # the history spans both stages


def test_train_with_task_switches_first(tiny):
    s = tiny("bert", "text-classification")
    s.train(["some in-domain text", "more in-domain text"] * 4, task="masked-lm", epochs=1, **FAST)
    assert s.task == "masked-lm"


def test_intermediate_task_then_target_task(tiny):
    s = tiny("bert", "text-classification", num_labels=2)
    rows = [{"text": f"sample {i}", "label": i % 2} for i in range(16)]
    s.train(rows, epochs=1, lr=5e-3, **FAST)
    encoder = {k: v.clone() for k, v in s.model.bert.state_dict().items()}
    s.reset_head(num_labels=3)
    assert all(torch.equal(s.model.bert.state_dict()[k], v) for k, v in encoder.items())
    s.train([{"text": f"x {i}", "label": i % 3} for i in range(12)], epochs=1, **FAST)
    assert s.model.classifier.out_features == 3


@pytest.mark.parametrize("task, columns", [
    ("token-classification", {"tokens": "words", "tags": "ner"}),
    ("seq2seq", {"source": "article", "target": "tldr"}),
    ("question-answering", {"question": "q", "context": "passage", "answers": "a"}),
    ("causal-lm", {"prompt": "instruction", "response": "output"}),
    (None, {"tokens": "words", "text": "sentence"}),
])
def test_recipes_accept_every_tasks_columns(task, columns):
    from nbtune.core.recipes.spec import RecipeError, parse_recipe

    recipe = parse_recipe({"model": "m", **({"task": task} if task else {}), "data": {"train": "t.csv", **columns}})
    assert recipe.data == {"train": "t.csv", **columns}
    if task:
        with pytest.raises(RecipeError, match="Unknown key 'label'"):
            parse_recipe({"model": "m", "task": "seq2seq", "data": {"label": "y"}})


def test_task_registry_knows_each_task_once_with_its_facts():
    from nbtune.core.tasks import all_tasks, get_task, task_from_class_name

    names = [t.name for t in all_tasks()]
    assert names[:2] == ["text-classification", "token-classification"] and len(names) == len(set(names))
    assert get_task("ner").labelled and get_task("qa").new_head and not get_task("summarization").new_head
    assert get_task("text-classification").peft_task_type == "SEQ_CLS"
    assert task_from_class_name("T5ForConditionalGeneration") == "seq2seq"
    assert task_from_class_name("GPT2LMHeadModel") == "causal-lm"
    with pytest.raises(nbtune.TaskError, match="did you mean 'seq2seq'"):
        get_task("seq2sq")


def test_predict_is_the_tasks(tiny_dirs, tmp_path):
    """Token classification predicts a tag per word; language models predict text; tasks without a prediction say
    what to use instead."""
    s = nbtune.load(tiny_dirs["bert"], task="token-classification", labels=["O", "B-LOC", "I-LOC"])
    out = s.predict(["the film was good", ["a", "city"]])
    assert [len(o["tags"]) for o in out] == [4, 2] and {t for o in out for t in o["tags"]} <= {"O", "B-LOC", "I-LOC"}
    lm = nbtune.load(tiny_dirs["gpt2"], task="causal-lm")
    (generated,) = lm.predict("the film")
    assert isinstance(generated["text"], str)
    mlm = nbtune.load(tiny_dirs["bert"], task="masked-lm")
    with pytest.raises(nbtune.TaskError, match="evaluate"):
        mlm.predict("the film")


# -- strict readers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, content, pattern", [
    ("bad.conll", "EU\tB-ORG\nrejects\tO\tO\n\n", r"bad.conll, line 2: 3 columns, but .*line 1.* has 2"),
    ("bad.csv", "sentence,label\ngood film,1\nbad, film,0\n", r"bad.csv, line 3: 3 fields, but the header has 2"),
    ("short.csv", "sentence,label\ngood film,1\nbad film\n", r"short.csv, line 3: 1 fields"),
    ("bad.tsv", "sentence\tlabel\ngood film\t1\t\n", r"bad.tsv, line 2: 3 fields"),
    ("bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0\n', r"bad.jsonl, line 2: not valid JSON"),
    ("keys.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b"}\n', r"keys.jsonl, line 3: the record lacks \['label'\]"),
    ("list.json", '[{"text": "a", "label": 1}, "b"]', r"list.json, item 1: expected a JSON object"),
    ("cols.json", '{"text": ["a", "b"], "label": [1]}', r"cols.json: the columns have different lengths"),
])
def test_readers_reject_malformed_rows_with_file_and_line(tmp_path, name, content, pattern):
    from nbtune.core.data.features import load_table

    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=pattern):
        load_table(path)


def test_readers_accept_well_formed_files(tmp_path):
    from nbtune.core.data.features import load_table

    (tmp_path / "ok.conll").write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n")
    table = load_table(tmp_path / "ok.conll")
    assert table["tags"].tolist() == [["B-ORG", "O"], ["B-PER"]]
    (tmp_path / "ok.jsonl").write_text('{"text": "a", "label": 1}\n\n{"text": "b", "label": 0}\n')
    assert load_table(tmp_path / "ok.jsonl")["label"].tolist() == [1, 0]
    (tmp_path / "quoted.csv").write_text('sentence,label\n"bad, but fun",1\n"multi\nline",0\n')
    assert load_table(tmp_path / "quoted.csv")["sentence"].tolist() == ["bad, but fun", "multi\nline"]
