"""What a request will bill: exact seconds and mode, an estimated USD amount.

Kling O1 bills per generated second; pro costs more than std, and a request with a video
in it (a reference or a base video to edit) costs more again. A base edit lasts as long
as its input video, which the pack cannot see (it is only a URL), so its seconds are a
range until the result reports its length.

The USD figures are estimates at the user's rates (Settings › CometAPI, else the table
below); the charge itself is whatever CometAPI deducts. web/lib/pricing.js mirrors this
module for the live display; tests/pricing_cases.json holds cases both must agree on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Optional

# Kling's list price for kling-video-o1 in its own units, turned into USD at its unit price.
# CometAPI publishes no Omni rate (checked 2026-12-01): override in Settings › CometAPI.
RATES_SOURCE = ("Kling's list price for kling-video-o1: 0.6 units/s std, 0.8 pro; 0.9 and 1.2 with a "
                "video input; 1 unit ≈ $0.14 (as of 2026-12). CometAPI publishes no Omni rate.")
MIN_INPUT_SECONDS, MAX_INPUT_SECONDS = 3, 10  # the length a base video may have


@dataclass(frozen=True)
class Rates:
    """USD per generated second, by mode and by whether a video goes in."""

    std: float = 0.084
    pro: float = 0.112
    std_with_video: float = 0.126
    pro_with_video: float = 0.168
    usd_per_unit: float = 0.14  # turns Kling's final_unit_deduction into USD

    def per_second(self, mode: str, video_input: bool) -> float:
        name = mode + ("_with_video" if video_input else "")
        if name not in _RATE_NAMES:
            raise ValueError(f"no rate for mode {mode!r}")
        return getattr(self, name)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


DEFAULT_RATES = Rates()
_RATE_NAMES = {f.name for f in fields(Rates)} - {"usd_per_unit"}


@dataclass(frozen=True)
class Cost:
    """What one task bills: mode and seconds are exact, USD is an estimate.

    seconds is None for a base edit until its length is known; USD is then a range over
    the lengths an input video may have.
    """

    mode: str
    seconds: Optional[float]
    video_input: bool
    usd_low: float
    usd_high: float

    @property
    def length(self) -> str:
        if self.seconds is None:
            return f"length of the input video, {MIN_INPUT_SECONDS}–{MAX_INPUT_SECONDS} s"
        return f"{self.seconds:g} s"

    @property
    def label(self) -> str:
        """'5 s · pro', exact: what the task is billed for."""
        return f"{self.length} · {self.mode}"

    @property
    def usd(self) -> str:
        """'≈ $0.56', or '≈ $0.50–$1.68' for a range: always called an estimate."""
        if math.isclose(self.usd_low, self.usd_high):
            return f"≈ {money(self.usd_high)}"
        return f"≈ {money(self.usd_low)}–{money(self.usd_high)}"

    @property
    def text(self) -> str:
        return f"{self.label} {self.usd}"


def cost(mode: str, seconds: Optional[float], video_input: bool, rates: Rates = DEFAULT_RATES) -> Cost:
    rate = rates.per_second(mode, video_input)
    if seconds is None:
        low, high = MIN_INPUT_SECONDS * rate, MAX_INPUT_SECONDS * rate
    else:
        low = high = billed_seconds(seconds) * rate
    return Cost(mode, seconds, video_input, round(low, 4), round(high, 4))


def estimate(request, rates: Rates = DEFAULT_RATES) -> Cost:
    """The cost of one task for an OmniRequest (kling_omni.request)."""
    seconds = request.duration if request.sends_duration else None
    return cost(request.mode, seconds, bool(request.refs.videos), rates)


def billed_seconds(seconds: float) -> float:
    # A base edit is billed on its input's length rounded to whole seconds (contract §9).
    return float(max(1, round(seconds)))


def actual_usd(units: str | float | None, rates: Rates = DEFAULT_RATES) -> Optional[float]:
    """Kling's final_unit_deduction in USD at the user's unit price; None when not reported."""
    try:
        value = float(units)
    except (TypeError, ValueError):
        return None
    return round(value * rates.usd_per_unit, 4) if math.isfinite(value) and value >= 0 else None


def money(usd: float) -> str:
    """$0.56, $12.40, $0.004 (small amounts keep a significant digit)."""
    if 0 < abs(usd) < 0.01:
        return f"${usd:.3f}"
    return f"${usd:,.2f}"
