"""Generate `modeling_paradistill.py`: one self-contained file (torch + transformers only) made from the project's
own backbone source — models/transformer.py, models/noise_embed.py and models/hf_model.py, in that order — with the package-relative
imports replaced by two small local definitions. An export directory carrying it loads with
`AutoModelForMaskedLM/AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True)` where paradistill is not
installed."""

from __future__ import annotations

import inspect
import re

from ..config import check_ranges
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


def modeling_source() -> str:
    parts = [HEADER, "\n", inspect.getsource(check_ranges)]
    for module in (transformer, noise_embed, hf_model):
        parts.append(f"\n# {'-' * 100} from paradistill.models.{module.__name__.rsplit('.', 1)[-1]}\n")
        parts.append(_inline(inspect.getsource(module)))
    text = "".join(parts)
    compile(text, f"{MODULE_NAME}.py", "exec")  # fail here, not in the user's process
    return text


def auto_map(export_as: str) -> dict[str, str]:
    """config.json's auto_map: the config class and the model under AutoModel and the kind's auto class."""
    cls = f"{MODULE_NAME}.ParadistillModel"
    return {"AutoConfig": f"{MODULE_NAME}.ParadistillConfig", "AutoModel": cls, export_as: cls}
