"""Numbers a user hands the package (augmentation strengths, recipe fields), checked where they enter.

Why: a NaN or an infinity passes every ``<``/``>`` comparison unnoticed (``nan < 0`` is
False), so ``rotation=float('nan')`` used to reach the warp and turn every training image
blank, and the run trained on nothing. :func:`check_number` refuses non-finite values and
values outside a range with one line naming the value's name and the value.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional


def _bounds_text(at_least, above, at_most, below) -> str:
    low = f"[{at_least}" if at_least is not None else f"({above}" if above is not None else None
    high = f"{at_most}]" if at_most is not None else f"{below})" if below is not None else None
    if low and high:
        return f" in {low}, {high}"
    if low:
        return f" {'>=' if at_least is not None else '>'} {low[1:]}"
    if high:
        return f" {'<=' if at_most is not None else '<'} {high[:-1]}"
    return ""


def check_number(name: str, value, *, at_least=None, above=None, at_most=None, below=None,
                 whole: bool = False, unit: str = "") -> None:
    """Raise ValueError (one line, naming ``name`` and ``value``) unless ``value`` is a finite real
    number (a whole number if ``whole``) within the given bounds (``at_least``/``at_most``
    inclusive, ``above``/``below`` exclusive). ``unit`` ("degrees") is said in the message."""
    kind = "a whole number" if whole else "a finite number"
    expected = f"{kind}{' of ' + unit if unit else ''}{_bounds_text(at_least, above, at_most, below)}"
    ok = (isinstance(value, numbers.Integral if whole else numbers.Real) and not isinstance(value, bool)
          and (isinstance(value, numbers.Integral) or math.isfinite(value))  # 10**400 has no float
          and (at_least is None or value >= at_least) and (above is None or value > above)
          and (at_most is None or value <= at_most) and (below is None or value < below))
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def check_optional(name: str, value, **bounds) -> None:
    """:func:`check_number` for a value that may also be None (the feature switched off)."""
    if value is not None:
        check_number(name, value, **bounds)


def check_pair(name: str, pair, *, ordered: bool = True, **bounds) -> Optional[tuple]:
    """A (low, high) pair of numbers, each checked with ``bounds``, low <= high if ``ordered``."""
    try:
        low, high = pair
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers (low, high), got {pair!r}") from None
    check_number(f"{name}[0]", low, **bounds)
    check_number(f"{name}[1]", high, **bounds)
    if ordered and low > high:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {pair!r}")
    return low, high
