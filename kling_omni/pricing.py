"""What a request will bill: exact seconds and mode, an estimated USD amount.

Kling bills per generated second, at a rate per model: pro costs more than std, native sound
(v3) costs more, and a request with a video in it (a reference or a base video to edit)
costs more again. A storyboard bills its total length. A base edit lasts as long as its
input video, which the pack cannot see (it is only a URL), so its seconds are a range until
the result reports its length.

The USD figures are estimates at the user's rates (Settings › CometAPI, else the table
below); the charge itself is whatever CometAPI deducts. web/lib/pricing.js mirrors this
module for the live display; tests/pricing_cases.json holds cases both must agree on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Optional

from .models import MODELS, O1, V3

# Kling's list prices in its own units, turned into USD at its unit price (contract §12.2).
# CometAPI publishes no Omni rate (checked 2026-12-01): override in Settings › CometAPI.
RATES_SOURCE = ("Kling's list prices: kling-video-o1 0.6 units/s std, 0.8 pro; 0.9 and 1.2 with a video input. "
                "kling-v3-omni the same, and 0.8 std / 1.0 pro with native sound. 1 unit ≈ $0.14 (as of 2026-12). "
                "CometAPI publishes no Omni rate.")
MIN_INPUT_SECONDS, MAX_INPUT_SECONDS = 3, 10  # the length a base video may have
# Rate names start with the model's prefix. O1's have none: they are the names settings files kept
# before v3, so those files still mean what they said (and an older pack ignores the v3 names).
RATE_PREFIX = {O1: "", V3: "v3_"}


@dataclass(frozen=True)
class Rates:
    """USD per generated second, by model, mode, native sound and whether a video goes in."""

    std: float = 0.084
    pro: float = 0.112
    std_with_video: float = 0.126
    pro_with_video: float = 0.168
    v3_std: float = 0.084
    v3_pro: float = 0.112
    v3_std_with_sound: float = 0.112
    v3_pro_with_sound: float = 0.14
    v3_std_with_video: float = 0.126
    v3_pro_with_video: float = 0.168
    usd_per_unit: float = 0.14  # turns Kling's final_unit_deduction into USD

    def per_second(self, mode: str, video_input: bool, *, model: str = O1, sound: bool = False) -> float:
        """Kling takes no sound with a video input (the rules refuse it), so a video input decides."""
        name = rate_name(model, mode, video_input, sound)
        if name not in _RATE_NAMES:
            raise ValueError(f"no rate for {model or O1} in mode {mode!r}" + (" with sound" if sound else ""))
        return getattr(self, name)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def rate_name(model: str, mode: str, video_input: bool, sound: bool) -> str:
    extra = "_with_video" if video_input else "_with_sound" if sound else ""
    return RATE_PREFIX.get(model or O1, f"{model}_") + mode + extra


DEFAULT_RATES = Rates()
_RATE_NAMES = {f.name for f in fields(Rates)} - {"usd_per_unit"}


@dataclass(frozen=True)
class Cost:
    """What one task bills: model, mode, sound and seconds are exact, USD is an estimate.

    seconds is None for a base edit until its length is known; USD is then a range over
    the lengths an input video may have.
    """

    mode: str
    seconds: Optional[float]
    video_input: bool
    usd_low: float
    usd_high: float
    model: str = O1
    sound: bool = False
    shots: int = 0  # a storyboard of our own shots (it bills its total length)

    @property
    def length(self) -> str:
        if self.seconds is None:
            return f"length of the input video, {MIN_INPUT_SECONDS}–{MAX_INPUT_SECONDS} s"
        return f"{self.seconds:g} s" + (f" in {self.shots} shot{'s' if self.shots > 1 else ''}" if self.shots else "")

    @property
    def label(self) -> str:
        """'5 s · pro' (O1, as before models could be chosen), '12 s · pro · v3 + sound': what the task
        is billed for, exactly."""
        model = MODELS.get(self.model)
        tag = "" if self.model == O1 else f" · {model.tag if model else self.model}"
        return f"{self.length} · {self.mode}{tag}" + (" + sound" if self.sound else "")

    @property
    def usd(self) -> str:
        """'≈ $0.56', or '≈ $0.50–$1.68' for a range: always called an estimate."""
        if math.isclose(self.usd_low, self.usd_high):
            return f"≈ {money(self.usd_high)}"
        return f"≈ {money(self.usd_low)}–{money(self.usd_high)}"

    @property
    def text(self) -> str:
        return f"{self.label} {self.usd}"


def cost(mode: str, seconds: Optional[float], video_input: bool, rates: Rates = DEFAULT_RATES, *,
         model: str = O1, sound: bool = False, shots: int = 0) -> Cost:
    model = model or O1
    rate = rates.per_second(mode, video_input, model=model, sound=sound)
    if seconds is None:
        low, high = MIN_INPUT_SECONDS * rate, MAX_INPUT_SECONDS * rate
    else:
        low = high = billed_seconds(seconds) * rate
    return Cost(mode, seconds, video_input, round(low, 4), round(high, 4), model, bool(sound), int(shots))


def estimate(request, rates: Rates = DEFAULT_RATES) -> Cost:
    """The cost of one task for an OmniRequest (kling_omni.request)."""
    seconds = request.duration if request.sends_duration else None
    return cost(request.mode, seconds, bool(request.refs.videos), rates, model=request.model, sound=request.sound,
                shots=len(request.shots))


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
