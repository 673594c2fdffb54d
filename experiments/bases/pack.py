"""Copy trained bases into the package: src/paradistill/bases/<name>/ gets the run's final EMA weights (float32) as
model.safetensors, its config.json with a `base` record (source run, step, validation loss, how it was trained) and
its tokenizer/; src/paradistill/bases/manifest.json records the sha256 and size of every file.

    python -m experiments.bases.pack --runs runs/bases [--only mdlm ...] [--trained-by "how"]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from paradistill import bases
from paradistill.checkpoint import resolve_checkpoint
from paradistill.io import atomic_write_text, replace_dir

from experiments.common.models import val_curve

ROOT = Path(__file__).resolve().parents[2]
# base name -> run folder of train.sh
RUNS = {"ar": "ar", "mdlm": "mdlm", "bd3lm-b4": "bd3lm-b4-long", "bd3lm-b16": "bd3lm-b16"}
TRAINED_BY = "experiments/bases/train.sh (tiny recipe, built-in corpus, CPU)"


def pack_one(name: str, run: Path, dest: Path, previous: dict | None = None, trained_by: str = TRAINED_BY) -> dict:
    """Copy one finished run into dest/name. `previous`: the manifest record of the base this run continued from
    (its --init was a builtin: id), kept in the new record so the chain of trainings stays on file."""
    latest = json.loads((run / "latest.json").read_text())
    if not latest.get("final"):
        raise SystemExit(f"{run}: its training has not finished (latest.json is not final); run train.sh first")
    ckpt = resolve_checkpoint(run)
    config = json.loads((ckpt / "config.json").read_text())
    curve = val_curve(run)
    config["base"] = {"name": name, "step": latest["step"], "val_loss": curve[-1][1] if curve else None,
                      "weights": "EMA, float32", "trained_by": trained_by}
    init = str(config.get("method", {}).get("init") or "")
    chain = None
    if init.startswith("builtin:") and previous:
        chain = {"id": init, "step": previous.get("total_steps", previous["step"]), "val_loss": previous["val_loss"],
                 "sha256": previous["files"]["model.safetensors"]["sha256"]}
    elif init and (Path(init) / "latest.json").is_file():  # train.sh's stage 2: --init "$OUT/mdlm"
        before = val_curve(init)
        chain = {"id": init, "step": json.loads((Path(init) / "latest.json").read_text())["step"],
                 "val_loss": before[-1][1] if before else None}
    if chain:
        config["base"]["continued_from"] = chain
        config["base"]["total_steps"] = chain["step"] + latest["step"]
    weights = ckpt / "ema.safetensors" if (ckpt / "ema.safetensors").is_file() else ckpt / "model.safetensors"
    with replace_dir(dest / name) as tmp:
        shutil.copyfile(weights, tmp / "model.safetensors")
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        shutil.copytree(ckpt / "tokenizer", tmp / "tokenizer")
    final = dest / name
    files = {str(f.relative_to(final)): {"sha256": bases.sha256_file(f), "bytes": f.stat().st_size}
             for f in sorted(p for p in final.rglob("*") if p.is_file())}
    size = files["model.safetensors"]["bytes"]
    if size > bases.MAX_WEIGHT_BYTES:
        raise SystemExit(f"{name}: model.safetensors is {size / 2**20:.2f} MiB, over the 8 MiB budget")
    return {"kind": config["kind"], "step": latest["step"], "val_loss": config["base"]["val_loss"], "files": files,
            **{k: config["base"][k] for k in ("total_steps", "continued_from") if k in config["base"]}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(ROOT / "runs" / "bases"), help="folder of the trained runs (train.sh's OUT)")
    ap.add_argument("--only", nargs="*", default=None, choices=sorted(RUNS), help="pack only these (others keep theirs)")
    ap.add_argument("--trained-by", default=TRAINED_BY,
                    help="how the runs were trained, recorded in each packed config.json (default: train.sh)")
    args = ap.parse_args(argv)
    dest = ROOT / "src" / "paradistill" / "bases"
    path = dest / bases.MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {"bases": {}}
    for name, folder in RUNS.items():
        if args.only and name not in args.only:
            continue
        rec = manifest["bases"][name] = pack_one(name, Path(args.runs) / folder, dest, manifest["bases"].get(name),
                                                  args.trained_by)
        print(f"builtin:{name}: {rec['kind']} step {rec['step']} val {rec['val_loss']:.4f} "
              f"({rec['files']['model.safetensors']['bytes'] / 2**20:.2f} MiB)")
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
