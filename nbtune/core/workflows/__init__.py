"""What runs whole jobs: a recipe end to end (``finetune.py``), races and run comparisons (``compare.py``), and
resuming a run after a restart (``resume.py``)."""
