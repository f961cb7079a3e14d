"""The embedded demo data: 16 deterministic index exports shaped like the study's files.

Layout A (13 columns, ``<OPENINT>`` three times, a Persian index name), UTF-16 LE with a
BOM, CRLF line ends, Gregorian dates, Saturday-Wednesday trading days with holidays.
Prices follow correlated random walks; the overall index's daily returns are AR(1) with
a positive lag-1 autocorrelation (the real TEDPIX has about 0.34). The data has the
flaws real exports have: three indices miss scattered days and one starts a year late.

``regime_change_days`` (default 0: off) turns the last N trading days of every index into
a different market regime, to demonstrate drift monitoring: daily returns swing
``REGIME_VOLATILITY`` times as much around the same drift, and volume jumps to a higher
level (``REGIME_VOLUME_LEVEL`` times) with wider day-to-day noise. It reuses the same
random draws, so the earlier days are byte for byte those of the default data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.core.calendar import TRADING_WEEKDAYS
from pipelines.core.fileio import atomic_path
from pipelines.core.params.sample import SampleSection

LAYOUT_A_HEADER = (
    "<TICKER>,<DTYYYYMMDD>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,"
    "<OPENINT>,<OPENINT>,<OPENINT>,<PER>,<NAME>,<LAST>"
)
DEFAULTS = SampleSection()  # params.yaml's sample: as the schema declares it
DEFAULT_END = dt.date(2025, 9, 23)  # fixed, so the data never depends on today's date
TARGET_AUTOCORRELATION = 0.34
REGIME_VOLATILITY = 3.0  # returns' deviation from the drift, times this, in a regime change
REGIME_VOLUME_LEVEL = 2.5  # volume level, times this
REGIME_VOLUME_NOISE = 2.0  # day-to-day log-volume noise, times this


@dataclass(frozen=True)
class SampleIndex:
    isin: str
    name_fa: str
    ticker: str
    beta: float  # loading on the overall index's daily return
    start_level: float
    volume_scale: float


SAMPLE_INDICES = (
    SampleIndex("IRX6XTPI0009", "شاخص کل", "Overall Index", 1.00, 1_208_560.0, 3.7e9),
    SampleIndex("IRX6XTPI0025", "شاخص کل (هم وزن)", "Overall Equal Weighted", 0.80, 405_210.0, 3.7e9),
    SampleIndex("IRXYXTPI0009", "شاخص قیمت (وزنی-ارزشی)", "Total Price Index", 0.98, 362_118.0, 3.7e9),
    SampleIndex("IRXYXTPI0025", "شاخص قیمت (هم وزن)", "Equal Weight Price", 0.78, 251_902.0, 3.7e9),
    SampleIndex("IRX6XAFF0005", "شاخص آزاد شناور", "Free Float Index", 1.05, 1_402_334.0, 3.7e9),
    SampleIndex("IRX6XTAL0001", "شاخص بازار اول", "Main Board Index", 1.02, 869_451.0, 2.1e9),
    SampleIndex("IRX6XALS0002", "شاخص بازار دوم", "Secondary Board Index", 0.90, 2_530_118.0, 1.6e9),
    SampleIndex("IRX6XSNT0009", "شاخص صنعت", "Industry Index", 1.01, 1_051_870.0, 3.2e9),
    SampleIndex("IRX6XS300003", "شاخص 30 شرکت بزرگ", "Top 30 Index", 1.08, 62_104.0, 1.2e9),
    SampleIndex("IRX6XSLC0000", "شاخص 50 شرکت بزرگ", "Top 50 Index", 1.06, 48_770.0, 1.5e9),
    SampleIndex("IRX6XWAI0001", "شاخص 50 شرکت فعال\u200cتر", "Top 50 Active Index", 1.00, 55_902.0, 1.9e9),
    SampleIndex("IRXZXOCI0008", "شاخص کل فرابورس", "OTC Overall Index", 0.75, 17_340.0, 1.1e9),
    SampleIndex("IRXZXOZ10008", "فرابورس - بازار اول", "OTC Main Board Index", 0.70, 13_215.0, 2.4e8),
    SampleIndex("IRXZXOZ20007", "فرابورس - بازار دوم", "OTC Secondary Index", 0.72, 35_460.0, 3.1e8),
    SampleIndex("IRX6X27T0007", "فلزات اساسی", "Basic Metals Index", 1.15, 842_013.0, 7.5e8),
    SampleIndex("IRX6X44T0006", "محصولات شیمیایی", "Chemicals Index", 1.10, 1_022_460.0, 6.8e8),
)
TARGET_ISIN = SAMPLE_INDICES[0].isin
GAPPY_ISINS = ("IRX6XALS0002", "IRXZXOZ10008", "IRX6X44T0006")  # miss scattered days
LATE_ISIN = "IRXZXOZ20007"  # starts about a year after the others


def trading_days(n_days: int, end: dt.date, rng: np.random.Generator) -> list[dt.date]:
    """The last ``n_days`` Saturday-Wednesday days up to ``end``, without holidays.

    Holidays: the Nowruz fortnight (20 March - 2 April) and about eight more random
    days a year, drawn from ``rng``.
    """
    days: list[dt.date] = []
    day = end
    while len(days) < n_days:
        nowruz = (day.month == 3 and day.day >= 20) or (day.month == 4 and day.day <= 2)
        if day.weekday() in TRADING_WEEKDAYS and not nowruz and rng.random() > 0.035:
            days.append(day)
        day -= dt.timedelta(days=1)
    return days[::-1]


def overall_returns(n: int, rng: np.random.Generator) -> np.ndarray:
    """Daily log returns of the overall index: AR(1) with a positive drift."""
    drift, sigma, phi = 0.0018, 0.008, TARGET_AUTOCORRELATION + 0.02
    shocks = rng.standard_normal(n) * sigma * np.sqrt(1 - phi**2)
    returns = np.empty(n)
    previous = 0.0
    for t in range(n):  # recursive by nature; n is a few thousand at most
        previous = phi * previous + shocks[t]
        returns[t] = drift + previous
    return returns


def _format_rows(
    spec: SampleIndex, dates: list[dt.date], log_returns: np.ndarray, rng: np.random.Generator,
    regime: np.ndarray | None = None,
) -> list[str]:
    """One export line per day; ``regime``: a mask of days with the regime's volume."""
    n = len(dates)
    close = spec.start_level * np.exp(np.cumsum(log_returns))
    previous_close = np.concatenate([[spec.start_level], close[:-1]])
    open_ = previous_close * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    open_, high, low, close = (np.round(a, 1) for a in (open_, high, low, close))
    high = np.maximum.reduce([high, open_, close])  # rounding must not break the bounds
    low = np.minimum.reduce([low, open_, close])
    volume_noise = rng.normal(0, 0.35, n)
    if regime is not None:
        volume_noise[regime] = (volume_noise[regime] * REGIME_VOLUME_NOISE
                                + np.log(REGIME_VOLUME_LEVEL))
    volume = np.rint(spec.volume_scale * np.exp(volume_noise + 25 * np.abs(log_returns)))
    value = volume * rng.uniform(3_500, 5_000, n)  # rials: about 4,400 per share traded
    trades = np.rint(volume / rng.uniform(15_000, 20_000, n))
    openint = value / rng.uniform(300, 400, n)
    rows = []
    for i, day in enumerate(dates):
        rows.append(
            f"{spec.ticker},{day:%Y%m%d},{open_[i]:.1f},{high[i]:.1f},{low[i]:.1f},"
            f"{close[i]:.1f},{volume[i]:.0f},{value[i]:.6g},{trades[i]:.0f},{openint[i]:.4g},"
            f"D,{spec.name_fa},{close[i]:.1f}"
        )
    return rows


def generate(
    out_dir: Path | str,
    n_days: int = DEFAULTS.days,
    seed: int = DEFAULTS.seed,
    end: dt.date = DEFAULT_END,
    regime_change_days: int = 0,
) -> list[Path]:
    """Write the 16 sample exports into ``out_dir``; return their paths.

    The same (n_days, seed, end, regime_change_days) always gives the same bytes. Files
    whose bytes are already right are left untouched, so re-running keeps DVC's hashes
    and mtimes. ``regime_change_days``: the last N days are a regime change (see above).
    """
    if n_days < 30:
        raise ValueError(f"--days must be at least 30, got {n_days}")
    if not 0 <= regime_change_days <= n_days:
        raise ValueError(f"--regime-change-days must be within 0..{n_days}, "
                         f"got {regime_change_days}")
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dates = trading_days(n_days, end, rng)
    market = overall_returns(n_days, rng)
    regime = None
    if regime_change_days:
        regime = np.zeros(n_days, dtype=bool)
        regime[n_days - regime_change_days:] = True
        drift = market.mean()
        market[regime] = drift + REGIME_VOLATILITY * (market[regime] - drift)
    late_start = min(n_days // 5, 245)
    written = []
    for spec in SAMPLE_INDICES:
        if spec.isin == TARGET_ISIN:
            returns = market
        else:
            own = rng.normal(0, 0.006, n_days)
            if regime is not None:
                own[regime] *= REGIME_VOLATILITY
            returns = spec.beta * market + own - 0.0002 * (spec.beta - 1)
        keep = np.ones(n_days, dtype=bool)
        if spec.isin in GAPPY_ISINS:
            keep[rng.choice(n_days, size=max(1, n_days // 60), replace=False)] = False
        if spec.isin == LATE_ISIN:
            keep[:late_start] = False
        rows = _format_rows(spec, dates, returns, rng, regime)
        text = "\r\n".join([LAYOUT_A_HEADER] + [r for r, k in zip(rows, keep, strict=True) if k])
        payload = b"\xff\xfe" + (text + "\r\n").encode("utf-16-le")
        target = out_dir / f"{spec.isin}.csv"
        if not (target.exists() and target.read_bytes() == payload):
            with atomic_path(target) as tmp:
                tmp.write_bytes(payload)
        written.append(target)
    return written


def foreign_files(out_dir: Path | str) -> list[Path]:
    """Files in ``out_dir`` that are not sample exports (the demo must not mix with them)."""
    names = {f"{spec.isin}.csv" for spec in SAMPLE_INDICES}
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name not in names and not p.name.startswith("."))
