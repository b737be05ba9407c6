"""What `scratchsim validate` writes and prints: results.csv (a row per configuration: the
median, every round's figure and steal, the per-stage medians measured and predicted),
summary.json, predicted_vs_measured.png, and the readable table with its PASS/FAIL line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ...plots.validation import plot_validation
from .grid import SETTINGS

FIXED_COLUMNS = ("workload", "batch_size", "dim", "mode", *SETTINGS, "capacity_rows",
                 "warmup", "iterations", "measured_s", "predicted_s", "error_pct",
                 "spread_pct", "unstable", "stolen_rounds")
KIND_NAMES = {"full": "full grid", "quick": "quick grid", "held-out": "held-out check"}


def write(work: Path, configs: list[dict], summary: dict) -> None:
    rounds = max((len(c["rounds_s"]) for c in configs), default=0)
    stages = {side: list(dict.fromkeys(s for c in configs for s in c[f"{side}_stages"]))
              for side in ("measured", "predicted")}
    columns = (list(FIXED_COLUMNS) + [f"round{r + 1}_s" for r in range(rounds)]
               + [f"round{r + 1}_steal" for r in range(rounds)]
               + [f"{side}_{s}_s" for side in stages for s in stages[side]])
    with open(work / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for c in configs:
            row = {k: c.get(k) for k in FIXED_COLUMNS}
            row["workload"] = f"B{c['batch_size']} d{c['dim']}"
            for r, (seconds, steal) in enumerate(zip(c["rounds_s"], c["rounds_steal"])):
                row[f"round{r + 1}_s"], row[f"round{r + 1}_steal"] = seconds, steal
            row.update({f"{side}_{s}_s": c[f"{side}_stages"].get(s)
                        for side in stages for s in stages[side]})
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_validation(configs, dict(summary, title=title(summary)),
                    work / "predicted_vs_measured.png")


def title(summary: dict) -> str:
    return (f"{KIND_NAMES[summary['kind']]} on {summary['device']}, profile "
            f"{summary['profile']}, {summary['rounds']} rounds")


def _or_na(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def verdict(summary: dict) -> str:
    return "PASS" if summary["passed"] else "FAIL"


def format_summary(summary: dict, output=None) -> str:
    """The readable table, the noise line and the PASS/FAIL line of `scratchsim validate`."""
    header = (f"{'workload':<11} {'mode':<15} {'capacity':>15} {'W':>2} {'victim':<6} "
              f"{'measured ms':>11} {'spread':>7} {'predicted ms':>12} {'error':>8}")
    lines = [header]
    for c in summary["configs"]:
        capacity = ("" if c["capacity_rows"] is None
                    else f"{c['capacity_rows']:,} ({c['capacity_pct']:g}%)")
        flags = " unstable" if c["unstable"] else ""
        flags += f" {c['stolen_rounds']} stolen" if c["stolen_rounds"] else ""
        lines.append(f"{'B%s d%s' % (c['batch_size'], c['dim']):<11} {c['mode']:<15} "
                     f"{capacity:>15} {'' if c['lookahead'] is None else c['lookahead']!s:>2} "
                     f"{c['victim'] or '':<6} {c['measured_s'] * 1e3:11.3f} "
                     f"{c['spread_pct']:6.1f}% {c['predicted_s'] * 1e3:12.3f} "
                     f"{c['error_pct']:+7.1f}%{flags}")
    for s in summary["skipped"]:
        lines.append(f"skipped: {s['reason']}")
    for note in summary["notes"]:
        lines.append(f"note: {note}")
    worst, pairs, noise = summary["worst"], summary["kendall_pairs"], summary["noise"]
    worst_text = "n/a" if worst is None else f"{worst['error']:.1%} ({worst['config']})"
    steal = noise["steal_max"]
    lines.append(
        f"noise: {summary['rounds']} rounds, noise floor {_or_na(noise['noise_floor'], '.1%')} "
        f"(first half of the rounds against the second), median spread "
        f"{_or_na(noise['median_spread'], '.1%')}, {noise['unstable']} of "
        f"{len(summary['configs'])} configurations unstable (rounds spread > "
        f"{noise['unstable_spread']:.0%}), CPU stolen by the hypervisor at most "
        f"{_or_na(steal, '.1%')} in a run ({noise['stolen_runs']} runs over "
        f"{noise['steal_limit']:.0%})"
        + ("" if noise["profile_spread"] is None else
           f", profile moved by {noise['profile_spread']['median']:.1%} (median number; "
           f"dispatch {noise['profile_spread']['cpu.dispatch_us']:.1%}) between rounds"))
    lines.append(
        f"{KIND_NAMES[summary['kind']]}, {len(summary['configs'])} configurations on "
        f"{summary['device']} (torch threads: {summary['threads']}), profile "
        f"{summary['profile']}: "
        f"MAPE {_or_na(summary['mape'], '.1%')}, worst {worst_text}, Kendall tau "
        f"{_or_na(summary['kendall_tau'], '.2f')} "
        f"({pairs['concordant']} concordant, {pairs['discordant']} discordant, "
        f"{pairs['tied']} tied pairs)")
    checks = []
    for c in summary["checks"]:
        if c["metric"] == "kendall_tau":
            value, target = _or_na(c["value"], ".3f"), c["target"]
        else:
            value, target = _or_na(c["value"], ".2%"), f"{c['target']:.0%}"
        checks.append(f"{c['metric']} {value} {c['comparison']} {target} "
                      f"{'ok' if c['ok'] else 'MISSED'}")
    lines.append(f"{verdict(summary)} against the targets: "
                 + ", ".join(checks) + (f"; written to {output}" if output is not None else ""))
    return "\n".join(lines)
