"""Recipes: the whole job as one YAML document; parsing and validation (``spec.py``), building the session
(``build.py``)."""
