"""Detection and false-alarm rates of the rule-based report checker on planted errors.

    .venv/bin/python benchmarks/report_check.py [--limit 500] [--seed 0] [--reference] [--blind] [--no-iu]

For our own reports (``tools/data/reports.yaml``) and a seeded sample of ``--limit`` IU-Xray reports
(read at run time from the torchxrayvision package; those with both FINDINGS and IMPRESSION), each
error type is planted into each report where it can be (``inject_error``; the rest count as not
applicable) and the rule checker runs on the result. A planted error is *detected* when a suspected
error of the same type overlaps its span, *found (any type)* when any suspected error does. The
false-alarm rate is the share of the clean reports with at least one suspected error. With
``--reference`` the report checked is the impression alone and the findings are the reference.

The injector reads reports with the same vocabulary as the checker, so its errors are ones the
checker can see by construction. ``--blind`` plants errors by surface edits instead, chosen without
reading the report (a random "left" or "right" of the impression swapped, a random sentence negated
or dropped, ...): many of those are undetectable in principle (a side that the findings never
state), so that rate is a floor, not a recall. A dropped sentence counts as detected when any
omitted-finding alarm is raised. Only counts are printed (no report text).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentclinic.tools.report_check import SuspectedError, check_rules  # noqa: E402
from agentclinic.tools.report_errors import (  # noqa: E402
    ADDED_SENTENCES, InjectionError, PlantedError, body_region, inject_error)
from agentclinic.tools.report_text import ErrorType, sample_reports  # noqa: E402
from agentclinic.tools.report_vocab import MEASURE_RX, SEVERITY_RX  # noqa: E402


@dataclass
class Tally:
    reports: int = 0
    alarmed: int = 0
    alarms: Counter = field(default_factory=Counter)
    applicable: Counter = field(default_factory=Counter)
    detected: Counter = field(default_factory=Counter)
    found: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    checks: int = 0


_SENTENCES = re.compile(r"\S.*?(?:[.!?](?=\s|$)|$)", re.S)
_OPPOSITE = {"trace": "large", "tiny": "large", "small": "large", "large": "small", "massive": "small",
             "minimal": "severe", "slight": "severe", "mild": "severe", "moderate": "mild", "severe": "mild",
             "marked": "mild", "extensive": "mild"}


def blind_inject(report: str, region_start: int, kind: ErrorType, rng: random.Random) -> tuple[str, PlantedError]:
    """One error planted by a surface edit of ``report[region_start:]`` chosen without reading the report."""
    region = report[region_start:]
    sentences = [(region_start + m.start(), region_start + m.end()) for m in _SENTENCES.finditer(region)
                 if len(m.group(0).split()) >= 3]

    def edit(start: int, end: int, new: str) -> tuple[str, PlantedError]:
        return report[:start] + new + report[end:], PlantedError(
            type=kind, start=start, end=start + len(new), original=report[start:end], new=new, edit_at=start)

    if kind is ErrorType.NEGATION and sentences:
        start, end = sentences[rng.randrange(len(sentences))]
        no = re.match(r"no\s+", report[start:end], re.I)
        if no:
            return edit(start, start + no.end() + 1, report[start + no.end()].upper())
        return edit(start, start + 1, "No " + report[start].lower())
    if kind is ErrorType.LATERALITY:
        words = list(re.finditer(r"\b(?:left|right)\b", region, re.I))
        if words:
            w = words[rng.randrange(len(words))]
            new = {"left": "right", "right": "left"}[w.group(0).lower()]
            return edit(region_start + w.start(), region_start + w.end(), new if w.group(0).islower() else new.title())
    if kind is ErrorType.MEASUREMENT:
        sizes = list(MEASURE_RX.finditer(region))
        if sizes:
            m = sizes[rng.randrange(len(sizes))]
            unit = {"mm": "cm", "cm": "mm"}.get(m.group(4).lower(), "mm")
            new = f"{float(m.group(1)) * 2:g} {m.group(4)}" if rng.random() < 0.5 else f"{m.group(1)} {unit}"
            return edit(region_start + m.start(), region_start + m.end(), new)
    if kind is ErrorType.SEVERITY:
        words = [w for w in SEVERITY_RX.finditer(region) if w.group(1).lower() in _OPPOSITE and not w.group(2)]
        if words:
            w = words[rng.randrange(len(words))]
            new = _OPPOSITE[w.group(1).lower()]
            new = new.title() if w.group(0)[0].isupper() else new
            return edit(region_start + w.start(), region_start + w.end(), new)
    if kind is ErrorType.ADDED and sentences:
        pool = ADDED_SENTENCES[body_region(report)]
        sentence = pool[rng.randrange(len(pool))][1]
        end = sentences[-1][1]
        lead = " " if report[end - 1] in ".!?" else ". "
        return report[:end] + lead + sentence + report[end:], PlantedError(
            type=kind, start=end + len(lead), end=end + len(lead) + len(sentence), original="", new=sentence,
            edit_at=end + len(lead))
    if kind is ErrorType.OMITTED and len(sentences) >= 2:
        start, end = sentences[rng.randrange(len(sentences))]
        return edit(start, end, "")
    if kind is ErrorType.REPETITION and sentences:
        start, end = sentences[rng.randrange(len(sentences))]
        return report[:end] + " " + report[start:end] + report[end:], PlantedError(
            type=kind, start=end + 1, end=end + 1 + end - start, original="", new=report[start:end], edit_at=end + 1)
    raise InjectionError(f"nothing to edit for a blind {kind.label}")


def _hit(errors: list[SuspectedError], kind: ErrorType | None, start: int, end: int, where: str) -> bool:
    return any((kind is None or e.type == kind) and e.where == where and e.overlaps(start, end) for e in errors)


def evaluate(pairs: list[tuple[str, str]], seed: int, reference_mode: bool, blind: bool = False) -> Tally:
    """``pairs``: (findings, impression) of clean reports."""
    tally = Tally()
    for index, (findings, impression) in enumerate(pairs):
        if reference_mode:
            report, reference = impression, findings
        else:
            report, reference = f"FINDINGS: {findings}\n\nIMPRESSION: {impression}", None
        started = time.perf_counter()
        clean = check_rules(report, reference)
        tally.seconds += time.perf_counter() - started
        tally.checks += 1
        tally.reports += 1
        tally.alarmed += bool(clean)
        tally.alarms.update(e.type for e in clean)
        for kind in ErrorType:
            try:
                if blind:
                    rng = random.Random(f"{seed + index}:{kind.value}")
                    text, error = blind_inject(report, 0 if reference_mode else report.index("IMPRESSION:") + 12,
                                               kind, rng)
                else:
                    planted = inject_error(report, kind, seed=seed + index, reference=reference)
                    text, error = planted.text, planted.error
            except InjectionError:
                continue
            tally.applicable[kind] += 1
            started = time.perf_counter()
            errors = check_rules(text, reference)
            tally.seconds += time.perf_counter() - started
            tally.checks += 1
            if blind and kind is ErrorType.OMITTED:
                tally.detected[kind] += any(e.type == kind for e in errors)
                tally.found[kind] += bool(errors)
                continue
            tally.detected[kind] += _hit(errors, kind, error.start, error.end, error.where)
            tally.found[kind] += _hit(errors, None, error.start, error.end, error.where)
    return tally


def _rate(a: int, b: int) -> str:
    return f"{a / b:6.1%}" if b else "    - "


def print_table(name: str, tally: Tally) -> None:
    print(f"\n{name}: {tally.reports} clean reports, {tally.checks} checks, "
          f"{tally.seconds / max(tally.checks, 1) * 1000:.2f} ms per check")
    print(f"  {'error type':<20} {'planted':>8} {'detected':>9} {'any type':>9}")
    total = Counter()
    for kind in ErrorType:
        n, d, f = tally.applicable[kind], tally.detected[kind], tally.found[kind]
        total.update({"n": n, "d": d, "f": f})
        print(f"  {kind.value:<20} {n:>8} {_rate(d, n):>9} {_rate(f, n):>9}")
    print(f"  {'all types':<20} {total['n']:>8} {_rate(total['d'], total['n']):>9} {_rate(total['f'], total['n']):>9}")
    by_type = ", ".join(f"{k.value} {v}" for k, v in sorted(tally.alarms.items())) or "none"
    print(f"  false alarms on clean reports: {_rate(tally.alarmed, tally.reports).strip()} of reports with >= 1, "
          f"{sum(tally.alarms.values()) / max(tally.reports, 1):.3f} per report ({by_type})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=500, help="IU-Xray reports to sample (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and the injections")
    parser.add_argument("--reference", action="store_true", help="check the impression against the findings as "
                                                                  "reference findings")
    parser.add_argument("--blind", action="store_true", help="plant errors by surface edits chosen without reading "
                                                             "the report (many undetectable in principle)")
    parser.add_argument("--no-iu", action="store_true", help="our reports only")
    args = parser.parse_args(argv)
    mode = "impression vs reference findings" if args.reference else "findings vs impression"
    print(f"rule-based check_report, {'blind ' if args.blind else ''}planted errors ({mode}), seed {args.seed}")
    ours = [(r.findings, r.impression) for r in sample_reports()]
    print_table("our reports (tools/data/reports.yaml)", evaluate(ours, args.seed, args.reference, args.blind))
    if args.no_iu:
        return
    from agentclinic.tools.iu_xray import IUXrayUnavailable, iter_reports

    try:
        every = [(r.findings, r.impression) for r in iter_reports(both=True)]
    except IUXrayUnavailable as exc:
        print(f"\nIU-Xray: skipped ({exc})")
        return
    sample = random.Random(args.seed).sample(every, min(args.limit, len(every)))
    print_table(f"IU-Xray sample ({len(sample)} of {len(every)} reports with findings and impression)",
                evaluate(sample, args.seed, args.reference, args.blind))


if __name__ == "__main__":
    main()
