"""The dashboard's pure parts: run-log parsing, spike detection, terminal bars, escaping in the page."""

from __future__ import annotations

import json
from datetime import datetime

from lakehouse.dashboard import charts, site
from lakehouse.dashboard.snapshot import Run, Snapshot, TableInfo, ago, parse_run, quarantine_spikes

WHEN = datetime(2026, 11, 25, 9, 0, 0)


def _row(run_id: str, rows_in: int, quarantined: int, status: str = "succeeded", details: object = None) -> dict[str, object]:
    return {"run_id": run_id, "kind": "incremental", "status": status, "started_at": WHEN, "duration_s": 1.5,
            "files_in": 1, "rows_in": rows_in, "rows_loaded": rows_in - quarantined, "rows_quarantined": quarantined,
            "details": details if isinstance(details, str) or details is None else json.dumps(details), "error": None}


def test_run_details_unknown_or_malformed_keys_are_tolerated() -> None:
    run = parse_run(_row("a", 10, 1, details={
        "sources": {"log_data": {"files": 2, "rows_in": 10, "loaded": 9, "quarantined": 1}},
        "layer_seconds": {"bronze": 1.0, "gold": "n/a"},
        "quality_rule_violations": {"events.level_known": 3},
        "new_fields": {"log_data": ["mood"]},  # a key this version does not know
    }))
    assert run.sources == {"log_data": {"files": 2, "rows_in": 10, "loaded": 9, "quarantined": 1}}
    assert run.layer_seconds == {"bronze": 1.0} and run.violations == {"events.level_known": 3}
    assert run.details["new_fields"] == {"log_data": ["mood"]}
    for broken in ("not json", "[1, 2]", None, json.dumps({"sources": [1], "layer_seconds": None})):
        bare = parse_run(_row("b", 0, 0, details=broken))
        assert (bare.sources, bare.layer_seconds, bare.violations) == ({}, {}, {})


def test_quarantine_spike_is_relative_to_the_typical_run() -> None:
    runs = [parse_run(_row(f"r{i}", 1000, 2)) for i in range(5)] + [parse_run(_row("big", 1000, 80))]
    assert quarantine_spikes(runs) == {"big"}
    assert quarantine_spikes([parse_run(_row("only", 1000, 5))]) == set()  # 0.5 %: below the floor
    assert quarantine_spikes([parse_run(_row("empty", 0, 0))]) == set()


def test_text_bars_scale_to_the_largest_value() -> None:
    rows = charts.with_bars([{"hour": 0, "plays": 10}, {"hour": 1, "plays": 5}, {"hour": 2, "plays": 0}], "plays", width=10)
    assert [r["bar"] for r in rows] == ["█" * 10, "█" * 5, ""]
    assert charts.text_bar(3, 8, width=1) == "▍" and charts.text_bar(12, 8, width=2) == "██"  # eighths; capped


def test_ago() -> None:
    assert ago(None, WHEN) == "—"
    assert ago(datetime(2026, 11, 25, 6, 0), WHEN) == "3 h ago"
    assert ago(datetime(2026, 11, 15, 9, 0), WHEN) == "10 days ago"


def test_untrusted_text_is_escaped_and_the_page_runs_no_script() -> None:
    evil = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    table = TableInfo("bronze.quarantine", "bronze", evil, 1, 1, WHEN, 1, 2048, [], ["appendOnly"], {}, [("raw", "string", evil)],
                      [{"version": 1, "timestamp": WHEN, "operation": "WRITE", "rows_written": 1}])
    run = Run("r1", "incremental", "failed", WHEN, 2.0, 1, 1, 0, 1, evil, {"bronze": 1.0}, {}, {"events.x": 1})
    snap = Snapshot("file:/w", WHEN, [table], [run], [{"source": "log_data", "reason": evil, "rows": 1, "samples": [evil]}],
                    None, None, [])
    html = site.render(snap)
    assert "<script" not in html and "<img" not in html and "onerror=alert" not in html.replace("onerror=alert(2)&gt;", "")
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3
    assert "default-src 'none'" in html  # and the browser would refuse any script anyway
    assert 'class="run failed"' in html and "<svg" in html


def test_a_warehouse_without_runs_violations_or_quarantine_renders() -> None:
    empty = Snapshot("file:/w", WHEN, [], [], [], None, None, [])
    assert "No runs yet." in site.render(empty) and "bronze.quarantine is empty." in site.render(empty)
    clean = parse_run(_row("ok", 10, 0, details={"quality_rule_violations": {"events.level_known": 0}, "layer_seconds": {"bronze": 1}}))
    html = site.render(Snapshot("file:/w", WHEN, [], [clean], [], WHEN, WHEN, []))
    assert "No rule violations recorded." in html and 'data-run="ok"' in html


def test_reconciliation_shows_zero_as_normal_and_names_the_files_it_missed() -> None:
    def page(*runs: Run) -> str:
        return site.render(Snapshot("file:/w", WHEN, [], list(runs), [], WHEN, WHEN, []))

    assert "no reconciliation in the runs shown" in page(parse_run(_row("plain", 10, 0)))
    zero = parse_run(_row("r0", 10, 0, details={"discovery": {"how": "list", "reconcile": {"missed": 0, "files": []}}}))
    assert '<span id="reconcile-missed">0</span>' in page(zero) and "flag ok" in page(zero)
    missed = parse_run(_row("r1", 10, 0, details={"discovery": {"how": "queue + full listing (reconciliation)",
                                                                "reconcile": {"missed": 2, "files": ["log_data/2018/10/late.json", "song_data/A/x.json"]}}}))
    html = page(zero, missed, parse_run(_row("later", 5, 0)))  # the latest reconciliation counts, not the latest run
    assert '<span id="reconcile-missed">2</span>' in html and "flag warn" in html
    assert "log_data/2018/10/late.json, song_data/A/x.json" in html


def test_freshness_shows_landing_to_gold_per_run() -> None:
    """The watch mode's cycles (and daily runs) record landing-to-gold seconds; the latest that read files is shown."""
    daily = parse_run(_row("daily", 10, 0, details={"landing_to_gold_s": {"oldest": 86000.4, "newest": 3600.0}}))
    cycle = parse_run(_row("cycle", 10, 0, details={"trigger": "watch", "landing_to_gold_s": {"oldest": 41.6, "newest": 12.2}}))
    idle = parse_run(_row("idle", 0, 0, details={"trigger": "watch"}))  # a cycle that read nothing: no latency
    html = site.render(Snapshot("file:/w", WHEN, [], [daily, cycle, idle], [], WHEN, WHEN, []))
    assert '<div class="big" id="landing-to-gold">42 s</div>' in html and "newest 12 s · cycle" in html
    assert 'id="latency-chart"' in html and [r.run_id for r, _ in site.landing_to_gold(Snapshot("file:/w", WHEN, [], [daily, cycle, idle],
                                                                                                  [], None, None, []))] == ["daily", "cycle"]
    assert 'id="latency-chart"' not in site.render(Snapshot("file:/w", WHEN, [], [idle], [], WHEN, WHEN, []))
