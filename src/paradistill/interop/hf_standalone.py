"""Generate `modeling_paradistill.py`: one self-contained file (torch + transformers only) made from the project's
own backbone source — models/transformer.py, models/noise_embed.py and models/hf_model.py, in that order — with the package-relative
imports replaced by two small local definitions. An export directory carrying it loads with
`AutoModelForMaskedLM/AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True)` where paradistill is not
installed."""

from __future__ import annotations

import importlib
import inspect
import re

from ..models import hf_model, noise_embed, transformer

MODULE_NAME = "modeling_paradistill"
HEADER = '''"""Stand-alone modeling file written by `paradistill export` (generated from paradistill's own backbone source:
models/transformer.py, models/noise_embed.py, models/hf_model.py). Needs torch and transformers only."""

from __future__ import annotations


class UserError(ValueError):
    """paradistill's error type (here a plain ValueError)."""


def check_memory(*args, **kwargs) -> None:  # paradistill checks free memory before large allocations
    return None

'''
_RELATIVE = re.compile(r"^(?P<indent>\s*)from \.[\w.]* import [^\n(]+$", re.MULTILINE)
_FUTURE = re.compile(r"^from __future__ import annotations\s*$", re.MULTILINE)


def _inline(source: str) -> str:
    source = _FUTURE.sub("", source)
    source = _RELATIVE.sub(lambda m: f"{m.group('indent')}pass  # (package import removed)"
                           if m.group("indent") else "", source)
    if re.search(r"^\s*from \.", source, re.MULTILINE):
        raise RuntimeError("a multi-line relative import cannot be inlined into the stand-alone modeling file")
    return source


HEADER_NAMES = ("UserError", "check_memory")
_IMPORT = re.compile(r"^\s*from (?P<dots>\.+)(?P<mod>[\w.]*) import (?P<names>[^\n(]+)$", re.MULTILINE)


def _helpers(modules) -> str:
    """Sources of the package functions the inlined modules import from elsewhere (e.g. config.check_ranges):
    each must be self-contained apart from the header's names."""
    inlined = {m.__name__ for m in modules}
    out, seen = [], set(HEADER_NAMES)
    for module in modules:
        package = module.__name__.rsplit(".", 1)[0]
        for m in _IMPORT.finditer(inspect.getsource(module)):
            base = package.rsplit(".", len(m.group("dots")) - 1)[0] if len(m.group("dots")) > 1 else package
            target = f"{base}.{m.group('mod')}" if m.group("mod") else base
            if target in inlined:
                continue
            for name in (n.strip().split(" as ")[0] for n in m.group("names").split(",")):
                if name in seen:
                    continue
                seen.add(name)
                out.append(f"\n# from {target}\n" + inspect.getsource(getattr(importlib.import_module(target), name)))
    return "".join(out)


def modeling_source() -> str:
    modules = (transformer, noise_embed, hf_model)
    parts = [HEADER, _helpers(modules)]
    for module in modules:
        parts.append(f"\n# {'-' * 100} from paradistill.models.{module.__name__.rsplit('.', 1)[-1]}\n")
        parts.append(_inline(inspect.getsource(module)))
    text = "".join(parts)
    compile(text, f"{MODULE_NAME}.py", "exec")  # fail here, not in the user's process
    return text


def auto_map(export_as: str) -> dict[str, str]:
    """config.json's auto_map: the config class and the model under AutoModel and the kind's auto class."""
    cls = f"{MODULE_NAME}.ParadistillModel"
    return {"AutoConfig": f"{MODULE_NAME}.ParadistillConfig", "AutoModel": cls, export_as: cls}
