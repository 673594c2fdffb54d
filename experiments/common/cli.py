"""argparse helpers shared by the experiment scripts."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type of a count (samples, seeds, batch size): refused up front, before any model is loaded or trained,
    when it is not a positive integer (argparse then prints the option's name and this message in one line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer: pass a count such as 256") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive count: pass 1 or more")
    return value
