"""`paradistill recipes`: list the named recipes."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("recipes", help="list named recipes", description="List the built-in recipes.")
    p.add_argument("--show", default=None, help="print one recipe's YAML")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..recipes import load_recipe, recipe_names, recipe_path

    if args.show:
        print(recipe_path(args.show).read_text())
        return 0
    for name in recipe_names():
        print(f"{name:24s} {load_recipe(name).description}")
    return 0
