"""``gateway check-config SITE.toml``: every problem of a site file at once, or what it says."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from gateway.runtime.run_config import RunConfig, RunConfigError, load
from gateway.runtime.site_schema import render_schema


def run(paths: list[Path], *, schema: bool, out: TextIO, err: TextIO) -> int:
    """0 when every file is valid, 1 when any is not (each problem on its own line)."""
    if schema:
        out.write(render_schema())
        return 0
    failed = False
    for path in paths:
        try:
            config = load(path)
        except RunConfigError as e:
            failed = True
            for p in e.problems:
                where = f":{p.line}" if p.line is not None else ""
                key = f" {p.key}:" if p.key else ""
                err.write(f"{path}{where}:{key} {p.message}\n")
            continue
        out.write(summary(config))
    return 1 if failed else 0


def summary(config: RunConfig) -> str:
    """What the gateway will do with this file, in a few lines a person can check."""
    site, panel = config.site, config.site.panel
    rule = "705.13 power control" if panel.coordinated else "705.12 120 % rule"
    limits = [
        f"{name} {value:g} W"
        for name, value in (
            ("export", site.site_policy.export_limit_w),
            ("import", site.site_policy.import_limit_w),
        )
        if value is not None
    ]
    es = site.enter_service
    lines = [
        f"{config.path}: ok",
        (
            f"  site {config.name}: {es.nominal_v:g} V, legs {'/'.join(panel.phases)}, "
            f"main {panel.main_breaker_a:g} A, busbar {panel.busbar_a:g} A, backfeed {rule} "
            f"(static allowance {panel.static_limit_a:g} A)"
        ),
        (
            f"  connection agreement: {', '.join(limits) or 'no fixed limits'}; backup "
            f"reserve {site.backup_reserve_soc_pct:g} %"
        ),
        (
            f"  enter service: {es.v_min_pu * es.nominal_v:.0f}-"
            f"{es.v_max_pu * es.nominal_v:.0f} V, {es.f_min_hz:g}-{es.f_max_hz:g} Hz for "
            f"{es.delay_s:g} s"
        ),
    ]
    for d in config.devices:
        unit = d.unit_id if d.unit_id is not None else d.profile.unit_id
        role = d.role
        if role == "charger":
            role += ", forms the island" if d.forms_island else ", only charges"
        lines.append(f"  device {d.name} ({role}): {d.profile.name} at {d.url} unit {unit}")
    lines.append(f"  utility links: {', '.join(config.links) or 'none (local control only)'}")
    lines.append(f"  store {config.store}")
    return "\n".join(lines) + "\n"
