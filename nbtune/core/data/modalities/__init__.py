"""One file per modality (``text.py``, ``tensor.py``), each registering its ``Modality`` class
(``nbtune.core.data.modality``)."""
