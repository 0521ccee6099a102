"""The targets a report is checked against, each met, missed or not applicable."""

from collections.abc import Sequence

# the targets (colorize-v2): PSNR gain over grayscale by domain, and the realism bounds
MIN_GAIN_OVER_GREY_DB = {"portrait": 2.0, "landscape": 1.5, "general": 0.5, "overall": 2.0}
MIN_SOURCE_PHOTOS = 50  # every source tag with this many photos must beat grayscale
MAX_FRECHET_VS_GREY = 0.6
MAX_COLOURFULNESS_GAP_PCT = 10.0
MAX_BROWN_SHARE_GAP = 0.15
PEOPLE_SOURCES = ("s40", "ccp")  # people in scenes, not face crops: they belong to portrait
MIN_PEOPLE_TO_PORTRAIT = 0.95
MIN_ROUTING_ACCURACY = 0.97


def _target(text: str, ok: bool | None, values: dict) -> dict:
    status = "not applicable" if ok is None else ("met" if ok else "missed")
    return {"target": text, "status": status, "values": values}


def _within(pct: float | None, limit: float) -> bool:
    return pct is not None and abs(pct) <= limit


def _versus(a: dict, b: dict, key: str, domains: Sequence[str]) -> dict[str, dict]:
    return {d: {"routed": a[d][key], "general_only": b[d][key]} for d in domains}


def _lower(a: float | None, b: float | None) -> bool | None:
    return None if a is None or b is None else a < b


def check_targets(
    report: dict, domains: Sequence[str], reference: dict | None = None
) -> list[dict]:
    """The targets, each met / missed / not applicable, with the numbers.

    ``reference`` is an earlier report on the same photos (the weights to beat)."""
    systems = report["systems"]
    routed, general, grey = systems["fallback"], systems["general_only"], systems["grayscale"]
    below = report["below_threshold"]
    gains = {d: routed[d]["psnr"] - grey[d]["psnr"] for d in (*domains, "overall") if d in routed}
    wanted = {d: MIN_GAIN_OVER_GREY_DB.get(d, 0.0) for d in gains}
    sources = {
        key: row["fallback"]["psnr"] - row["grayscale"]["psnr"]
        for key, row in report["sources"].items()
        if row["fallback"]["photos"] >= MIN_SOURCE_PHOTOS
    }
    fd, fd_grey = routed["overall"]["frechet"], grey["overall"]["frechet"]
    fd_reference = None
    if reference is not None:
        fd_reference = reference["systems"]["fallback"]["overall"].get("frechet")
    gaps = {d: routed[d]["colourfulness_gap_pct"] for d in domains}
    brown, brown_true = routed["overall"]["brown_share"], routed["overall"]["brown_share_true"]
    people, accuracy = report["people_to_portrait"], report["routing"]["accuracy"]
    psnr = _versus(routed, general, "psnr", domains)
    frechet_ = _versus(routed, general, "frechet", domains)
    limit = MAX_COLOURFULNESS_GAP_PCT
    return [
        _target(
            "routed PSNR >= grayscale + "
            + ", ".join(f"{g:g} dB ({d})" for d, g in MIN_GAIN_OVER_GREY_DB.items()),
            all(gains[d] >= wanted[d] for d in gains),
            {f"{d}_gain_db": v for d, v in gains.items()},
        ),
        _target(
            f"routed never below grayscale (PSNR) for a source with >= {MIN_SOURCE_PHOTOS} photos",
            all(v >= 0 for v in sources.values()) if sources else None,
            {f"{k}_gain_db": v for k, v in sources.items()},
        ),
        _target(
            f"Frechet distance overall <= {MAX_FRECHET_VS_GREY:g} x grayscale's",
            None if fd is None or fd_grey is None else fd <= MAX_FRECHET_VS_GREY * fd_grey,
            {"routed": fd, "grayscale": fd_grey},
        ),
        _target(
            "Frechet distance overall lower than the reference weights'",
            _lower(fd, fd_reference),
            {"routed": fd, "reference": fd_reference},
        ),
        _target(
            f"colourfulness within {limit:g}% of the truth's in every domain",
            all(_within(v, limit) for v in gaps.values()),
            {f"{d}_gap_pct": v for d, v in gaps.items()},
        ),
        _target(
            f"brown/orange share within {MAX_BROWN_SHARE_GAP:g} of the truth's overall",
            None
            if brown is None or brown_true is None
            else abs(brown - brown_true) <= MAX_BROWN_SHARE_GAP,
            {"routed": brown, "truth": brown_true},
        ),
        _target(
            f">= {MIN_PEOPLE_TO_PORTRAIT:.0%} of people photos ({', '.join(PEOPLE_SOURCES)}) "
            f"routed to portrait; routing accuracy >= {MIN_ROUTING_ACCURACY:.0%}",
            None
            if accuracy is None
            else accuracy >= MIN_ROUTING_ACCURACY
            and (people["to_portrait"] is None or people["to_portrait"] >= MIN_PEOPLE_TO_PORTRAIT),
            {"people_to_portrait": people["to_portrait"], "routing_accuracy": accuracy},
        ),
        _target(
            "routed beats general-only on PSNR and Frechet distance in every domain",
            all(v["routed"] > v["general_only"] for v in psnr.values())
            and all(_lower(v["routed"], v["general_only"]) is not False for v in frechet_.values()),
            {"psnr": psnr, "frechet": frechet_},
        ),
        _target(
            "fallback at least as good as argmax (PSNR) on the photos below the threshold",
            below["fallback"]["psnr"] >= below["argmax"]["psnr"] if below["photos"] else None,
            {
                "photos": below["photos"],
                "fallback": below["fallback"]["psnr"],
                "argmax": below["argmax"]["psnr"],
            },
        ),
    ]
