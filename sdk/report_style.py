"""The stylesheet of report.html (inlined: the page is one self-contained file)."""

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1240px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #ddd;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.pick td{background:#f0fff0} td.ok{background:#eaf7ea} td.bad{background:#fdecec}
.muted{color:#777} .scroll{overflow-x:auto} svg{max-width:100%;height:auto}
.note{background:#fffbe6;border:1px solid #f0e0a0;padding:6px 10px}
td{overflow-wrap:anywhere} td[data-key=name]{overflow-wrap:break-word}
td.num{white-space:nowrap;overflow-wrap:normal} td.ok,td.bad{overflow-wrap:normal}
td.reason{font-size:12px}
#candidates{font-size:12px} #candidates th,#candidates td{padding:3px 5px}
tr.skipped td{color:#888;background:#fafafa} tr.failed td.reason{color:#9b1c1c}
.badge{display:inline-block;padding:0 6px;border-radius:9px;font-size:11px;font-weight:600;
 border:1px solid;white-space:nowrap;margin-right:4px}
.badge.ok{color:#1e6b1e;border-color:#7cc47c;background:#eaf7ea}
.badge.bad{color:#9b1c1c;border-color:#e39a9a;background:#fdecec}
.badge.failed{color:#fff;border-color:#b42318;background:#b42318}
.badge.skipped{color:#555;border-color:#bbb;background:#f2f2f2;border-style:dashed}
.badge.pick{color:#fff;border-color:#1f5fae;background:#1f5fae}
.badge.front{color:#444;border-color:#999;background:#fff}
ol.legend{columns:3 260px;font-size:12px;margin:4px 0 0;padding-left:22px}
ol.legend .dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:4px;
 border:1px solid #222}
"""
