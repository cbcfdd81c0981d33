"""Summaries of kept runs: medians, per-round ratios and a bootstrap 95% interval."""
import random
import statistics


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def bootstrap_ci(xs, n=4000, seed=14, level=0.95):
    """Percentile bootstrap interval of the median of xs (seeded: the same JSON renders the
    same table). None for fewer than two values."""
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return None
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(n))
    lo = meds[int((1 - level) / 2 * n)]
    hi = meds[min(n - 1, int((1 + level) / 2 * n))]
    return [lo, hi]


def ratio_summary(per_round):
    """per_round: [A/B of round 0, A/B of round 1, ...] (None where a run failed)."""
    return {"per_round": per_round, "median": median(per_round), "ci95": bootstrap_ci(per_round)}


def spread(xs):
    xs = [x for x in xs if x is not None]
    return (median(xs), min(xs), max(xs)) if xs else (None, None, None)
