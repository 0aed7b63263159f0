"""``Session.summary()``'s result: parameter counts plus a training-memory estimate, as numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

from nbtune.core.model.fit import FitVerdict
from nbtune.core.model.memory import MemoryEstimate
from nbtune.core.model.params import ParamCounts
from nbtune.render.reports import summary_html, summary_text


@dataclass
class Summary:
    """Counts and memory for the session's current freeze/adapter state. Renders as text and HTML."""

    model_name: str
    task: str | None
    counts: ParamCounts
    memory: MemoryEstimate
    notes: list[str] = field(default_factory=list)
    fit: FitVerdict | None = None  # fits / does not fit on the detected device, and the change that would
    processor: str | None = None  # the session's processor in one line (``BertTokenizer (text)``)

    # Shortcuts used by widgets and tests.
    @property
    def total(self) -> int:
        return self.counts.total

    @property
    def trainable(self) -> int:
        return self.counts.trainable

    @property
    def pct_trainable(self) -> float:
        return self.counts.pct_trainable

    def __repr__(self) -> str:
        return summary_text(self)

    def _repr_html_(self) -> str:
        return summary_html(self)
