"""The CTC recognizers' model code, copied into their exports as transformers custom-model files, so that
``pipeline("image-to-text", model=<export>, trust_remote_code=True)`` (and ``AutoModelForCTC`` /
``AutoImageProcessor`` with ``trust_remote_code=True``) load them with transformers alone, as custom models on the
Hub do: ``config.json`` and ``preprocessor_config.json`` name the classes under ``auto_map``.

The files are this package's own modules, not a second copy kept by hand: the family's configuration and modeling
modules and the shared ones they import (``models/ctc_*.py``), written side by side with their relative imports
made single-dot (transformers loads remote code as one flat folder). A relative import that would not resolve in
that folder is an export error, not a broken export. transformers 4.57.x copies a local folder's remote-code
module into its module cache with only the files that module imports directly, so each module ``auto_map`` names
gets one more import line per file it needs only indirectly (``ctc_decoding`` through ``ctc_recognizer``).

Nothing changes for this package itself: a process that has called ``ctc_families.register_auto_classes`` loads
the export with ``trust_remote_code=False`` from its own classes (5.x takes those registered classes for the model
even when remote code is allowed).
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

from ..models import ctc_decoding, ctc_processor, ctc_recognizer, ctc_vocab

SHARED_MODULES = (ctc_recognizer, ctc_decoding, ctc_vocab, ctc_processor)
IMAGE_PROCESSOR = ctc_processor.CtcLineImageProcessor
RELATIVE_IMPORT = re.compile(r"^(\s*from\s+)(\.+)([\w.]*)(\s+import\b)", re.MULTILINE)
PROCESSOR_CONFIGS = ("preprocessor_config.json", "processor_config.json")


def flat_source(path: Path, modules: set[str]) -> str:
    """``path``'s source with every relative import pointing into the flat folder of ``modules`` (file stems)."""
    def flatten(match: re.Match) -> str:
        module = match.group(3)
        if not module or "." in module or module not in modules:
            raise RuntimeError(f"{path.name} imports {match.group(2)}{module}, which the export's remote code "
                               f"({', '.join(sorted(modules))}) does not hold; add it to hub/remote_code.py")
        return f"{match.group(1)}.{module}{match.group(4)}"

    return RELATIVE_IMPORT.sub(flatten, path.read_text(encoding="utf-8"))


def class_ref(cls: type) -> str:
    """``module.Class`` as ``auto_map`` names it: the flat file's stem and the class."""
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def relative_imports(source: str) -> set[str]:
    return {match.group(3) for match in RELATIVE_IMPORT.finditer(source)}


def with_indirect_imports(stem: str, sources: dict[str, str]) -> str:
    """``sources[stem]`` plus an import of every module it needs only through other modules (4.57.x, above)."""
    needed, todo = set(), [stem]
    while todo:
        for module in relative_imports(sources[todo.pop()]) - needed:
            needed.add(module)
            todo.append(module)
    indirect = sorted(needed - relative_imports(sources[stem]) - {stem})
    lines = [f"from .{module} import __name__ as _{module}  # noqa: E402,F401" for module in indirect]
    note = "# transformers 4.57.x copies only the directly imported files of a local folder's remote code:\n"
    return sources[stem] + (f"\n{note}" + "\n".join(lines) + "\n" if lines else "")


def write_remote_code(model, export_dir: Path) -> dict:
    """Write ``model``'s code (its config's and model's modules, the shared CTC modules) into ``export_dir`` and
    return the ``auto_map`` for its ``config.json``."""
    paths = [Path(inspect.getsourcefile(cls)) for cls in (type(model.config), type(model))]
    paths += [Path(inspect.getsourcefile(module)) for module in SHARED_MODULES]
    sources = {path.stem: flat_source(path, {p.stem for p in paths}) for path in paths}
    entries = {cls.__module__.rsplit(".", 1)[-1] for cls in (type(model.config), type(model), IMAGE_PROCESSOR)}
    for stem, source in sources.items():
        text = with_indirect_imports(stem, sources) if stem in entries else source
        (export_dir / f"{stem}.py").write_text(text, encoding="utf-8")
    return {"AutoConfig": class_ref(type(model.config)), "AutoModelForCTC": class_ref(type(model))}


def name_image_processor(export_dir: Path) -> None:
    """Name the image processor's remote class in the processor files ``save_pretrained`` wrote (4.57.x reads
    ``preprocessor_config.json``, 5.x may read ``processor_config.json``'s ``image_processor`` entry)."""
    auto_map = {"AutoImageProcessor": class_ref(IMAGE_PROCESSOR)}
    for name in PROCESSOR_CONFIGS:
        path = export_dir / name
        config = json.loads(path.read_text()) if path.is_file() else {}
        target = config if name == "preprocessor_config.json" else config.get("image_processor")
        if isinstance(target, dict) and target:
            target["auto_map"] = {**target.get("auto_map", {}), **auto_map}
            path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
