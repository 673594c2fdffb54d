"""Detokenisers for the zero-shot perplexity corpora: undo each corpus's pre-tokenisation artefacts (spaces
around punctuation, WikiText's `@-@` number separators, PTB's ` n't` and `N` placeholders, ...) so that text
reaches the model's tokenizer the way running text would. MDLM / BD3-LM / DUO apply this kind of clean-up
before scoring WikiText-103, PTB, LM1B, LAMBADA, PubMed and ArXiv (AG News is used as is).

Each detokeniser is a table of rules applied in order: a `(pattern, replacement)` pair whose pattern is
compiled as a regular expression when it starts with `re:`, else replaced literally.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..errors import UserError

Rule = tuple[str, str]


def _compile(rules: Sequence[Rule]) -> Callable[[str], str]:
    steps: list[Callable[[str], str]] = []
    for pattern, repl in rules:
        if pattern.startswith("re:"):
            rx = re.compile(pattern[3:], re.MULTILINE)
            steps.append(lambda s, rx=rx, repl=repl: rx.sub(repl, s))
        else:
            steps.append(lambda s, pattern=pattern, repl=repl: s.replace(pattern, repl))

    def detok(text: str) -> str:
        for step in steps:
            text = step(text)
        return text

    return detok


# spaces before closing punctuation, as left by word-level tokenisation
_PUNCT = [(f" {p} ", f"{p} ") for p in (",", ".", ":", ";", "!", "?")]
# a bracket or quote pair with padding inside: "( x )" -> "(x)"
_PAIRS = [(r're:\(\s*([^()]*?)\s*\)', r"(\1)"), (r're:\[\s*([^\[\]]*?)\s*\]', r"[\1]"),
          (r're:\{\s*([^{}]*?)\s*\}', r"{\1}"), (r're:"\s*([^"]*?)\s*"', r'"\1"')]

WIKITEXT: list[Rule] = [
    (" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."),  # number separators: 1 @,@ 000 -> 1,000
    ("s ' ", "s' "), (" 's", "'s"),  # possessives
    *_PUNCT, *_PAIRS, (r"re:'\s*([^']*?)\s*'", r"'\1'"),
    ("= = = =", "===="), ("= = =", "==="), ("= =", "=="),  # section headings
    (" \u00b0 ", "\u00b0"),
    ("re: +\n", "\n"), ("re:\n +", "\n"),
    (" N ", " 1 "),
]

PTB: list[Rule] = [
    (" 's", "'s"), ("s ' ", "s' "), (" n't", "n't"),
    ("\\/", "/"),
    ("re:(?<= )N(?= )", "1"),  # the number placeholder (all occurrences, also adjacent ones)
    ("$ 1", "$1"), ("# 1", "#1"),
    ("<unk>", "?"),
    (" \n ", "\n"),
]

LM1B: list[Rule] = [
    ("http : / / ", "http://"), ("https : / / ", "https://"),
    (r"re: '(\w+)", r"'\1"),  # split contractions: I 'm -> I'm
    (r"re: (\w+) \.(?= |$)", r" \1."),
    ("re: ([?!,:;])(?= |$)", r"\1"),
    (" / ", "/"),
    (r're:" ([^"]+) "', r'"\1"'), (r"re:' ([^']+) '", r"'\1'"),
    (r"re:\( ([^()]+) \)", r"(\1)"), (r"re:\[ ([^\[\]]+) \]", r"[\1]"),
    ("$ ", "$"), ("\u00a3 ", "\u00a3"),
]

LAMBADA: list[Rule] = [("\u201c", '"'), ("\u201d", '"'), ("re:^\\s+|\\s+$", "")]


def _lambada(text: str) -> str:
    return "\n" + _compile(LAMBADA)(text)  # each passage starts a new line, as in MDLM's evaluation


DETOKENIZERS: dict[str, Callable[[str], str]] = {
    "wikitext": _compile(WIKITEXT),
    "ptb": _compile(PTB),
    "lm1b": _compile(LM1B),
    "lambada": _lambada,
    "scientific_papers": _compile([*WIKITEXT, *LM1B]),
    "none": lambda text: text,
}


def get_detokenizer(name: str) -> Callable[[str], str]:
    try:
        return DETOKENIZERS[name]
    except KeyError:
        raise UserError(f"unknown detokenizer '{name}': choose one of {', '.join(DETOKENIZERS)}") from None
