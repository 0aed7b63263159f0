"""One precision per process (accelerate fixes mixed precision for the life of a process): train all-MiniLM-L6-v2
on SST-2 and SmolLM2-135M on GSM8K with ``precision=argv[1]``, twice each (the second call re-uses the optimizer,
which once broke fp16's loss scaler), and write losses and metrics as JSON to argv[2].

    python tests/gpu_precision_worker.py fp16 out.json CACHE_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import nbtune  # noqa: E402
from nbtune.core.training.events import FitStarted  # noqa: E402

from gpu_helpers import gsm8k, minilm_path, smollm2_path, sst2  # noqa: E402


def run(session, data, eval_data, **settings) -> dict:
    started = []
    first = session.train(data, eval=eval_data, callbacks=[lambda e, c: started.append(e) if isinstance(e, FitStarted) else None],
                          log=False, **settings)
    second = session.train(data, log=False, **{**settings, "max_steps": 5})
    rows = [r for r in session.history.rows if "loss" in r]
    n_first = first.steps
    return {
        "precision": started[0].precision, "device": started[0].device,
        "reasons": [first.reason, second.reason], "messages": first.messages + second.messages,
        "losses": [r["loss"] for r in rows[:n_first]],
        "second_losses": [r["loss"] for r in rows[n_first:]], "skipped": sum(r["grad_norm"] is None for r in rows),
        "metrics": first.metrics, "param_dtype": str(next(session.model.parameters()).dtype),
        "on_gpu": all(p.is_cuda == torch.cuda.is_available() for p in session.model.parameters()),
    }


def main() -> None:
    precision, out, cache = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    cuda = torch.cuda.is_available()  # without one it still runs (on the CPU), so it can be tried anywhere
    result = {"gpu": torch.cuda.get_device_name(0) if cuda else "cpu",
              "capability": list(torch.cuda.get_device_capability(0)) if cuda else []}
    torch.manual_seed(0)  # the new classification head is initialised at load time: same head in every process
    s = nbtune.load(minilm_path(), task="text-classification", labels=["negative", "positive"])
    result["minilm"] = run(s, sst2("train", 1280), sst2("dev"), max_steps=40, batch_size=32, lr=5e-5, seed=42,
                           precision=precision)
    del s
    torch.manual_seed(0)
    s = nbtune.load(smollm2_path(cache), task="causal-lm")
    result["smollm2"] = run(s, gsm8k("train", 480), gsm8k("test", 64), max_steps=30, batch_size=8, lr=2e-4,
                            max_length=384, seed=42, precision=precision)
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
