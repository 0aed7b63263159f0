"""One file per PEFT method family; each registers its ``AdapterMethod`` when imported. Every module in this
package whose name does not start with ``_`` is imported here, so adding a method is adding a file."""

import importlib
import pkgutil

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: (m.name != "lora", m.name)):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
