"""Preference tuning (DPO, ORPO): the loss and rewards equal TRL's on the same tensors, the reference is the policy
as DPO started (a frozen snapshot of the adapter, or a frozen copy), and the metrics reach the history. Generation
before and after."""

from __future__ import annotations

import pytest
import torch

import nbtune
from nbtune.core.common.errors import DataError, NbtuneError
from nbtune.core.objectives.dpo import DPO, DPOSettings
from nbtune.core.tasks.preference import PreferenceTask

PREFS = [{"prompt": "was the film good?", "chosen": "yes it was a lovely film", "rejected": "no it was dull and boring"},
         {"prompt": "how was the acting?", "chosen": "the acting was great", "rejected": "bad acting all around"}] * 8


def _history(session):
    return session.history.to_pandas().dropna(subset=["loss"])


def test_dpo_loss_and_rewards_equal_trls_on_the_same_batch(chat_dir, tmp_path):
    trl = pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chat_dir)
    policy, reference = AutoModelForCausalLM.from_pretrained(chat_dir), AutoModelForCausalLM.from_pretrained(chat_dir)
    torch.manual_seed(1)
    with torch.no_grad():  # a policy that already differs from its reference, so the rewards are not zero
        for param in policy.parameters():
            param.add_(0.02 * torch.randn_like(param))
    rows = [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in PREFS[:2]]
    args = trl.DPOConfig(output_dir=str(tmp_path), report_to="none", beta=0.1, per_device_train_batch_size=2,
                         use_cpu=True, max_length=64, bf16=False, fp16=False)
    trainer = trl.DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    policy.eval()
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
    metrics = {k: v[-1] for k, v in trainer._metrics["eval"].items()}

    n = batch["input_ids"].shape[0] // 2  # TRL's batch: the chosen rows, then the rejected ones
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    ours = {}
    for side, rows_of in (("chosen", slice(0, n)), ("rejected", slice(n, None))):
        ours[f"{side}_input_ids"] = batch["input_ids"][rows_of]
        ours[f"{side}_attention_mask"] = batch["attention_mask"][rows_of]
        ours[f"{side}_labels"] = labels[rows_of]
    dpo = DPO(DPOSettings(beta=0.1))
    dpo.use_reference(policy, reference)  # the frozen copy nbtune would make, here TRL's reference
    with torch.no_grad():
        result = dpo(policy, ours, PreferenceTask())
    out = result.outputs
    assert float(result.metrics["reward_margin"]) == pytest.approx(metrics["rewards/margins"], rel=1e-4)
    assert float(out.loss) == pytest.approx(trl_loss, rel=1e-5)
    assert float(out.chosen_rewards.mean()) == pytest.approx(metrics["rewards/chosen"], rel=1e-4)
    assert float(out.rejected_rewards.mean()) == pytest.approx(metrics["rewards/rejected"], rel=1e-4)
    assert float(out.margin.mean()) == pytest.approx(metrics["rewards/margins"], rel=1e-4)
    assert float((out.margin > 0).float().mean()) == pytest.approx(metrics["rewards/accuracies"])


def test_dpo_with_an_adapter_uses_the_disabled_adapter_as_reference_and_learns(chat_dir):
    s = nbtune.load(chat_dir)
    s.add_lora(r=8)
    notes = s.switch_task("dpo")
    assert "same model" in notes[0] and s.adapters[0].name == "default"  # the adapter stays
    before = s.evaluate(PREFS)
    assert before["reward_margin"] == pytest.approx(0.0, abs=1e-6)  # a fresh LoRA is the reference itself
    s.train(PREFS, max_steps=8, batch_size=4, lr=5e-3, log=False, save_run=False)
    history = _history(s)
    assert {"reward_margin", "reward_accuracy", "reward_chosen", "reward_rejected"} <= set(history.columns)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    after = s.evaluate(PREFS)
    assert after["reward_accuracy"] == 1.0 and after["reward_margin"] > 0.05
    assert not s.training.objectives["dpo"].made_a_copy  # no copy of the model was made
    with s.adapters_disabled():  # the reference itself did not move
        assert s.evaluate(PREFS)["reward_margin"] == pytest.approx(0.0, abs=1e-6)


def test_dpo_after_sft_holds_the_policy_to_the_sft_model_not_the_base(chat_dir, tmp_path):
    s = nbtune.load(chat_dir, task="causal-lm")
    s.add_lora(r=8)
    s.train([{"prompt": r["prompt"], "completion": r["chosen"]} for r in PREFS], max_steps=6, batch_size=4, lr=1e-2,
            log=False, save_run=False)
    sft = {n: p.detach().clone() for n, p in s.model.named_parameters() if p.requires_grad}
    s.switch_task("dpo")
    assert s.evaluate(PREFS)["reward_margin"] == pytest.approx(0.0, abs=1e-6)  # the SFT model is the reference
    batch = s.tokenizer(["was the film good? yes it was a lovely film"], return_tensors="pt")
    with torch.no_grad():
        tuned = s.model(**batch).logits
        with s.adapters_disabled():  # the base is not the reference: SFT moved the policy away from it
            assert not torch.allclose(s.model(**batch).logits, tuned, atol=1e-3)
    result = s.train(PREFS, max_steps=4, batch_size=4, lr=5e-3, log=False, save_run=False)
    assert any("DPO reference: adapter 'default'" in m and "default_reference" in m for m in result.messages)
    assert [a.name for a in s.adapters] == ["default", "default_reference"] and s.model.active_adapter == "default"
    # the snapshot holds the SFT weights, frozen; the policy's adapter trained on and is still what trains
    ref = dict(s.model.named_parameters())
    assert all(torch.equal(ref[n.replace(".default.", ".default_reference.")], w) for n, w in sft.items())
    assert sorted(s.trainable_parameters()) == sorted(sft)
    assert any(not torch.equal(ref[n], w) for n, w in sft.items())
    # the next run keeps the same reference (DPO continued, not restarted); a reloaded session too
    s.train(PREFS, max_steps=2, batch_size=4, lr=5e-3, log=False, save_run=False)
    assert all(torch.equal(ref[n.replace(".default.", ".default_reference.")], w) for n, w in sft.items())
    before = s.evaluate(PREFS)
    assert before["reward_margin"] > 0
    s.save(tmp_path / "dpo")
    again = nbtune.load(tmp_path / "dpo")
    assert again.evaluate(PREFS)["reward_margin"] == pytest.approx(before["reward_margin"], abs=1e-5)


def test_dpo_without_an_adapter_keeps_a_frozen_copy_as_reference(chat_dir):
    s = nbtune.load(chat_dir, task="dpo")
    start = {n: p.detach().clone() for n, p in s.model.named_parameters()}
    s.train(PREFS, max_steps=4, batch_size=4, lr=1e-3, log=False, save_run=False)
    assert s.task == "preference" and s.objective == "dpo"
    reference = s.training.objectives["dpo"].reference_for(s.model)  # the copy made at the first step
    assert all(torch.equal(p, start[n]) for n, p in reference.named_parameters())
    assert not any(p.requires_grad for p in reference.parameters())
    assert any(not torch.equal(p, start[n]) for n, p in s.model.named_parameters())
    assert _history(s)["reward_margin"].iloc[-1] > 0


def test_orpo_trains_without_a_reference(chat_dir):
    s = nbtune.load(chat_dir, task="orpo")
    s.add_lora(r=8)
    s.train(PREFS, max_steps=8, batch_size=4, lr=5e-3, beta=0.2, log=False, save_run=False)
    history = _history(s)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0] and history["reward_margin"].iloc[-1] > 0
    assert s.objective == "orpo" and "dpo" not in s.training.objectives  # no reference was needed or made
    assert s.training.objectives["orpo"].settings.beta == 0.2  # train(beta=...) reached the objective


def test_preference_data_in_messages_form_and_bad_data(chat_dir):
    s = nbtune.load(chat_dir, task="dpo")
    rows = [{"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in PREFS[:2]]
    features = PreferenceTask().prepare(s, __import__("pandas").DataFrame(rows), _cfg())
    tok = s.tokenizer
    row = features.rows[0]
    assert tok.decode([t for t in row["chosen_labels"] if t != -100]) == "yes it was a lovely film <|im_end|>"
    assert tok.decode([t for t in row["rejected_labels"] if t != -100]) == "no it was dull and boring <|im_end|>"
    assert "be brief" in tok.decode(row["chosen_input_ids"])
    with pytest.raises(DataError, match="No rejected column found"):
        s.train([{"prompt": "a", "chosen": "b"}], max_steps=1, log=False, save_run=False)
    with pytest.raises(DataError, match="every label is masked"):
        s.train(PREFS, max_steps=1, max_length=6, log=False, save_run=False)
    assert len(s.history.rows) == 0


def _cfg(**kwargs):
    from nbtune.core.training.config import TrainConfig

    return TrainConfig(**kwargs)


def test_before_after_shows_base_and_tuned_answers(chat_dir):
    s = nbtune.load(chat_dir)
    with pytest.raises(NbtuneError, match="no adapter"):
        s.before_after(["was the film good?"])
    s.add_lora(r=8)
    s.train([{"prompt": "was the film good?", "response": "yes yes yes"}] * 16, max_steps=10, batch_size=8,
            lr=2e-2, log=False, save_run=False)
    table = s.before_after(["was the film good?"], max_new_tokens=4)
    assert "yes" in table.tuned[0] and "yes" not in table.base[0]
    with s.adapters_disabled():
        assert s.generate(["was the film good?"], max_new_tokens=4) == table.base
    html = table._repr_html_()
    assert "<table" in html and "base (adapters disabled)" in html and "yes" in html
    assert "tuned: " + table.tuned[0] in repr(table) and list(table.to_pandas().columns) == ["prompt", "base", "tuned"]


@pytest.mark.slow
def test_smollm2_generates_with_and_without_its_chat_template(smollm_gguf):
    s = nbtune.load(smollm_gguf)
    plain = s.generate(["The capital of France is", "Once upon a time"], chat=False, max_new_tokens=8)
    chatted = s.generate(["What is the capital of France?"], max_new_tokens=8)
    assert all(text.strip() for text in plain) and "Paris" in plain[0]
    assert "Paris" in chatted[0] and "<|im_start|>" not in chatted[0] + plain[0]
