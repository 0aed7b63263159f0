"""One file per PEFT method family; each registers its ``AdapterMethod`` when imported. The registry
(``nbtune.core.adapters.registry``) imports every module here whose name does not start with ``_``, LoRA first,
so adding a method is adding a file."""
