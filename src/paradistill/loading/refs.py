"""Checkpoint references: one parser for every place that takes a checkpoint.

    runs/mdlm, runs/mdlm/checkpoints/step_100    a paradistill run / checkpoint directory
    /models/mdlm-owt, weights.ckpt               a local Hugging Face directory or a weights file
    hf:ORG/NAME[@REVISION][/PATH]                a Hugging Face hub repository (PATH: a file inside it)
    builtin:NAME                                 a base shipped in the package (paradistill/bases)

Schemes (`hf:` ...) are a registry: `register_scheme("builtin", resolver)` adds `builtin:NAME`, where the
resolver maps the text after the colon to a local path. The hub resolver reads the `huggingface_hub` cache
first; it downloads only when the cache misses and `HF_HUB_OFFLINE` is not set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

from huggingface_hub import snapshot_download
from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                    RepositoryNotFoundError, RevisionNotFoundError)

from .. import bases
from ..errors import UserError

SCHEMES: dict[str, Callable[[str], Path]] = {}
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.py", "*.ckpt", "*.bin"]
_HUB_ID = re.compile(r"^(?P<repo>(?:[\w.-]+/)?[\w.-]+)(@(?P<rev>[\w./-]+?))?(/(?P<file>[^@]+))?$")


def register_scheme(name: str, resolver: Callable[[str], Path]) -> None:
    """`resolver(rest)` -> local path for references `name:rest`."""
    SCHEMES[name] = resolver


def split_ref(ref: str) -> tuple[str | None, str]:
    """('hf', 'ORG/NAME@REV') for a scheme reference, (None, ref) for a path. Windows drives are not schemes."""
    head, sep, rest = str(ref).partition(":")
    if sep and head in SCHEMES:
        return head, rest
    return None, str(ref)


def resolve(ref: str | Path) -> Path:
    """A local path for any checkpoint reference (UserError naming the reference when it cannot be found)."""
    scheme, rest = split_ref(str(ref))
    if scheme is not None:
        return SCHEMES[scheme](rest)
    p = Path(rest).expanduser()
    if not p.exists():
        known = ", ".join(f"{s}:..." for s in SCHEMES)
        raise UserError(f"checkpoint '{ref}' does not exist: pass a run or checkpoint directory, a Hugging Face model "
                        f"directory, a weights file, or a reference {known}")
    return p


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    """The huggingface_hub cache, read from the environment at call time (tests point it elsewhere)."""
    env = os.environ.get("HF_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface")
    return home.expanduser() / "hub"


def parse_hub_id(rest: str) -> tuple[str, str | None, str | None]:
    m = _HUB_ID.match(rest.strip())
    if m is None:
        raise UserError(f"hub reference 'hf:{rest}' is malformed: write hf:ORG/NAME, hf:ORG/NAME@REVISION or "
                        "hf:ORG/NAME@REVISION/FILE")
    return m.group("repo"), m.group("rev"), m.group("file")


def _cached_revisions(cache: Path, repo: str) -> list[str]:
    folder = cache / f"models--{repo.replace('/', '--')}"
    refs = sorted(p.name for p in (folder / "refs").glob("*")) if (folder / "refs").is_dir() else []
    snaps = sorted(p.name[:12] for p in (folder / "snapshots").glob("*")) if (folder / "snapshots").is_dir() else []
    return refs + snaps


def resolve_hub(rest: str) -> Path:
    """hf:ORG/NAME[@REVISION][/FILE] -> a snapshot directory (or a file in it) of the local hub cache."""
    local = Path(rest).expanduser()
    if rest and local.exists():  # hf:DIR, a local Hugging Face directory (the older form)
        return local
    repo, rev, file = parse_hub_id(rest)
    cache = hub_cache_dir()
    where = f"hf:{repo}" + (f"@{rev}" if rev else "")
    try:
        snapshot = Path(snapshot_download(repo, revision=rev, cache_dir=str(cache), local_files_only=True))
    except (LocalEntryNotFoundError, EntryNotFoundError, FileNotFoundError):
        snapshot = None
    if snapshot is None:
        cached = _cached_revisions(cache, repo)
        if is_offline():
            if cached:
                raise UserError(f"revision '{rev or 'main'}' of {where} is not in the hub cache {cache} (cached: "
                                f"{cached}) and HF_HUB_OFFLINE=1: pass one of the cached revisions, or download it "
                                f"online (hf download {repo} --revision {rev or 'main'})")
            raise UserError(f"{where} is not in the hub cache {cache} and HF_HUB_OFFLINE=1: download it once online "
                            f"(hf download {repo}{f' --revision {rev}' if rev else ''}) or pass a local directory")
        try:
            snapshot = Path(snapshot_download(repo, revision=rev, cache_dir=str(cache), allow_patterns=HUB_FILES))
        except RevisionNotFoundError:
            raise UserError(f"{where}: the hub has no revision '{rev}': pass an existing branch, tag or commit "
                            f"(hf:{repo}@main)") from None
        except RepositoryNotFoundError:
            raise UserError(f"{where}: no such repository on the hub (or it is private): check ORG/NAME") from None
        except (HfHubHTTPError, OSError, LocalEntryNotFoundError) as e:
            raise UserError(f"{where} is not in the hub cache {cache} and could not be downloaded ({type(e).__name__}):"
                            " go online once or set HF_HUB_CACHE to a cache that has it") from None
    if file:
        target = snapshot / file
        if not target.exists():
            have = sorted(p.name for p in snapshot.iterdir())
            raise UserError(f"{where} has no file '{file}' (it has {have}): pass one of those after the repository")
        return target
    return snapshot


def paradistill_home() -> Path:
    return Path(os.environ.get("PARADISTILL_HOME") or "~/.cache/paradistill").expanduser()


def converted_dir(key: str) -> Path:
    """Where the conversion with this key (hash of the source files + converter options) is cached."""
    return paradistill_home() / "converted" / key


register_scheme("hf", resolve_hub)
register_scheme(bases.SCHEME, bases.resolve)  # builtin:NAME, the bases shipped in the package


def output_dir(ref: str | Path) -> Path:
    """Where commands put outputs about a checkpoint by default: the directory itself when the reference is a local
    directory, else runs/hub/<reference with / @ : replaced> (never a folder named 'hf:...')."""
    scheme, rest = split_ref(str(ref))
    local = Path(rest)
    if scheme is None and local.is_dir():
        return local
    if scheme is None and local.is_file():
        return local.parent
    return Path("runs") / "hub" / re.sub(r"[^\w.-]+", "_", str(ref)).strip("_")
