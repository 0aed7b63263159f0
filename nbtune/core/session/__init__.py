"""The session: one model with its processor and task (``session.py``), how it is loaded (``loading.py``), saved and
reloaded (``persist.py``), exported as a recipe or a GGUF file, and previewed."""
