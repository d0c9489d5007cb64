"""How bench/run.py words its rows: each row's measured figures as one short text
(stored in the JSON as "summary", which scripts/bench-readme.py puts in the README),
and the printed table."""

import re


def n(value):
    """1234.5 -> "1,235"."""
    return f"{value:,.0f}"


def pct(ratio):
    return f"{ratio * 100:.0f} %"


def cpu(groups):
    """{"services_us": 450, "postgres_us": 300} -> "services 450 µs + postgres 300 µs"."""
    return " + ".join(f"{k[:-3]} {v:,} µs" for k, v in groups.items() if k.endswith("_us"))


def steady(m):
    return f"p50 {m['p50_ms']:.1f} ms, p99 {m['p99_ms']:.1f} ms, {n(m['rate'])}/s, {m['non_2xx']} non-2xx"


def flat(m):
    text = f"{n(m['rps'])} rps, p99 {m['p99_ms']:.1f} ms"
    if m.get("non_2xx"):
        text += f", {m['non_2xx']} non-2xx"
    return text


def summary(row):
    # Numbered rows (order_steady_2, secured_order_flat_1) are worded as their kind.
    m, kind = row["measured"], re.sub(r"_\d+$", "", row["id"])
    if kind in ("get_items", "order_flat"):
        return f"{flat(m)}; bare {n(m['bare_rps'])} rps; {pct(m['ratio'])} of bare"
    if kind in ("get_price", "price_bulk", "bare_get_items", "bare_order"):
        return flat(m)
    if kind == "order_steady":
        return steady(m)
    if kind == "cpu_per_order":
        return f"{cpu(m)} ({n(m['orders'])} orders)"
    if kind == "peak_rss":
        return ", ".join(f"{k[:-3]} {v:.1f} MB" for k, v in m.items())
    if kind == "secured_order_flat":
        return f"on {n(m['on_rps'])} / off {n(m['off_rps'])} rps = {pct(m['ratio'])}; on: {m['on_non_2xx']} non-2xx"
    if kind == "secured_order_steady":
        on, off = m["on"], m["off"]
        return (f"p99 on {on['p99_ms']:.1f} / off {off['p99_ms']:.1f} ms = {pct(m['ratio'])}; "
                f"on: {n(on['rate'])}/s, {on['non_2xx']} non-2xx")
    if kind == "secured_cpu_per_order":
        return f"on: {cpu(m['on'])}; off: {cpu(m['off'])}"
    if kind == "soak_rss":
        first, last = m["minutes"][0], m["minutes"][-1]
        return "; ".join(f"{s} {first[s + '_mb']:.1f} → {last[s + '_mb']:.1f} MB (max ±{pct(c)})"
                         for s, c in m["max_change"].items())
    if kind == "soak_p99":
        return (f"minute 2 {m['second_p99_ms']:.1f} ms, last {m['last_p99_ms']:.1f} ms = {pct(m['ratio'])}; "
                f"{m['non_2xx']} non-2xx")
    return ", ".join(f"{k} {v}" for k, v in m.items())


def line(row, widths=(44, 9, 70, 0)):
    cells = (row["label"], row["store"], row["summary"], row["target"])
    text = "  ".join(f"{c:<{w}}" if w else c for c, w in zip(cells, widths))
    return f"{row['status']:<5} {text}"


def text_table(result):
    rows = result["rows"]
    if not rows:
        return "(no rows measured)"
    widths = [max(len(r[k]) for r in rows) for k in ("label", "store", "summary")] + [0]
    head = {"label": "row", "store": "store", "summary": "measured", "target": "target", "status": "status"}
    widths = [max(w, len(head[k])) if w else 0 for w, k in zip(widths, ("label", "store", "summary", "target"))]
    out = [line(head, widths)] + [line(r, widths) for r in rows]
    for r in rows:
        if r["id"] == "soak_rss":
            out.append("\nsoak, per minute:")
            for m in r["measured"]["minutes"]:
                rss = ", ".join(f"{k[:-3]} {v:.1f} MB" for k, v in m.items() if k.endswith("_mb"))
                out.append(f"  minute {m['minute']:>2}: p50 {m['p50_ms']:.1f} ms, p99 {m['p99_ms']:.1f} ms, "
                           f"{n(m['rate'])}/s, {m['non_2xx']} non-2xx; RSS {rss}")
    passed = sum(r["status"] == "PASS" for r in rows)
    missed = sum(r["status"] == "MISS" for r in rows)
    out.append(f"\n{passed} PASS, {missed} MISS, {len(rows) - passed - missed} info")
    return "\n".join(out)
