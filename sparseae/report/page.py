"""The HTML page of one or two :class:`~sparseae.report.run.RunContent` (:func:`render_html`) and
its file (:func:`write_report`)."""
from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import DataError, OutputExistsError
from ..files import write_text_atomic
from ..labels import METRIC_LABELS, format_value
from ..runs.folder import COMPARISON_PREFIX, CONFIG_NAME, REPORT_NAME
from .run import _FACTS, FIGURES, RunContent, _check_run_folder, _device, collect_run


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _metric_rows(summary: dict[str, Any] | None) -> dict[str, tuple[str, Any]]:
    """metric key → (label, value), known metrics first in :data:`METRIC_LABELS` order."""
    metrics = (summary or {}).get("metrics") or {}
    if not isinstance(metrics, dict):
        return {}
    keys = [key for key in METRIC_LABELS if key in metrics] + [key for key in metrics if key not in METRIC_LABELS]
    return {key: (METRIC_LABELS.get(key, key), metrics[key]) for key in keys}


def _facts(content: RunContent) -> dict[str, Any]:
    """label → value: the summary's facts, or what the config says for an unfinished run."""
    facts: dict[str, Any] = {"status": content.status}
    summary = content.summary or {}
    model, data = ((content.config or {}).get(name) for name in ("model", "data"))
    model, data = (section if isinstance(section, dict) else {} for section in (model, data))
    fallback = {"model": model.get("name"), "n_components": content.code_units or model.get("n_components"),
                "data": data.get("name"),
                "epochs": content.history[-1].get("epoch") if content.history else None}
    for key, label in _FACTS:
        value = summary.get(key, fallback.get(key))
        if value is not None:
            facts[label] = round(value, 2) if key == "train_seconds" and isinstance(value, float) else value
    provenance = summary.get("provenance")
    if isinstance(provenance, dict):  # activations harvested from a Hugging Face model
        facts["harvested from"] = (f"{provenance.get('model')} ({provenance.get('model_class')}), "
                                   f"{provenance.get('hook_module')} {provenance.get('position')}, "
                                   f"{provenance.get('n_tokens')} tokens of {provenance.get('text')}")
    facts["run folder"] = str(content.run_dir.resolve())
    return facts


def _flatten(mapping: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(mapping, dict):
        return {prefix: mapping}
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(_flatten(value, name) if isinstance(value, dict) and value else {name: value})
    return flat


def _yaml_html(text: str) -> str:
    """The config text, escaped, with keys and comments marked for colour."""
    lines = []
    for line in text.splitlines():
        escaped = _e(line)
        if line.lstrip().startswith("#"):
            lines.append(f'<span class="comment">{escaped}</span>')
            continue
        match = re.match(r"^(\s*(?:-\s+)?)([^:#\s][^:#]*?)(:(?:\s|$).*)$", escaped)
        lines.append(f'{match.group(1)}<span class="key">{match.group(2)}</span>{match.group(3)}' if match
                     else escaped)
    return "\n".join(lines)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{_e(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(format_value(cell))}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _metrics_section(contents: Sequence[RunContent]) -> str:
    tables = [_metric_rows(content.summary) for content in contents]
    keys = list(dict.fromkeys(key for table in tables for key in table))
    if not keys:
        unfinished = [c for c in contents if c.summary is None]
        latest = "".join(
            f"<h3>{_e(c.name)}: last logged epoch</h3>"
            + _table(("term", "value"), [(k, v) for k, v in c.history[-1].items() if k != "epoch"], "metrics")
            for c in unfinished if c.history)
        return ('<p class="note">No final metrics yet: they are computed when a run finishes '
                f"(summary.json); the run may still be training, or have stopped.</p>{latest}")
    labels = {key: next(table[key][0] for table in tables if key in table) for key in keys}
    if len(contents) == 1:
        rows = [(labels[key], tables[0][key][1]) for key in keys]
        return _table(("metric", "value"), rows, "metrics")
    rows = [(labels[key], *(table[key][1] if key in table else None for table in tables)) for key in keys]
    return _table(("metric", *(content.name for content in contents)), rows, "metrics compare")


def _facts_section(contents: Sequence[RunContent]) -> str:
    facts = [_facts(content) for content in contents]
    if len(contents) == 1:
        cells = "".join(f"<div><dt>{_e(label)}</dt><dd>{_e(format_value(value))}</dd></div>"
                        for label, value in facts[0].items())
        return f'<dl class="facts">{cells}</dl>'
    labels = list(dict.fromkeys(label for fact in facts for label in fact))
    return _table(("", *(content.name for content in contents)),
                  [(label, *(fact.get(label) for fact in facts)) for label in labels], "facts-table compare")


def _figure(content: RunContent, stem: str, title: str) -> str:
    if stem not in content.figures:
        return f'<div class="missing">{_e(content.name)}: no {_e(title.lower())}</div>'
    stale = (f'<figcaption class="stale">{_e(stem)}.png from the run folder (written when training ended): it could '
             "not be drawn now</figcaption>") if stem in content.stale else ""
    picture = _image(content.figures[stem], f"{title} of {content.name}")
    return f'<figure class="fig-{_e(stem)}">{picture}{stale}</figure>'


def _figure_sections(contents: Sequence[RunContent]) -> list[tuple[str, str, str]]:
    sections = []
    for stem, title, caption in FIGURES:
        if not any(stem in content.figures for content in contents):
            continue
        if len(contents) == 1:
            body = _figure(contents[0], stem, title)
        else:
            body = '<div class="pair">' + "".join(
                f'<div class="side"><div class="side-name">{_e(content.name)}</div>'
                f"{_figure(content, stem, title)}</div>" for content in contents) + "</div>"
        if stem == "firing":
            body += _firing_table(contents)
        sections.append((stem, title, f'<p class="caption">{_e(caption)}</p>{body}'))
    return sections


def _firing_table(contents: Sequence[RunContent]) -> str:
    """The counts of the recorded firing rates (:attr:`RunContent.firing`), one column per run."""
    from ..runs.metrics import DENSE_FIRING_RATE, RARE_FIRING_RATE

    if not any(content.firing for content in contents):
        return ""
    labels = (("n_latents", "latents"), ("dead", "dead (never fire)"),
              ("rare", f"rare (fire on under {100 * RARE_FIRING_RATE:g}% of rows)"),
              ("dense", f"dense (fire on over {100 * DENSE_FIRING_RATE:g}% of rows)"),
              ("median_rate", "median firing rate"), ("mean_rate", "mean firing rate"))
    rows = [(label, *((content.firing or {}).get(key) for content in contents)) for key, label in labels]
    names = [content.name for content in contents] if len(contents) > 1 else ["value"]
    header = ("firing statistic", *names)
    return _table(header, rows, "metrics firing" + (" compare" if len(contents) > 1 else ""))


def _config_section(contents: Sequence[RunContent]) -> str:
    blocks = []
    for content in contents:
        text = (f'<pre class="config">{_yaml_html(content.config_text)}</pre>' if content.config_text is not None
                else f'<p class="note">No {_e(CONFIG_NAME)}.</p>')
        name = f'<div class="side-name">{_e(content.name)}</div>' if len(contents) > 1 else ""
        blocks.append(f'<div class="side">{name}{text}</div>')
    if len(contents) == 1:
        return blocks[0]
    flat = [_flatten(content.config or {}) for content in contents]
    keys = [key for key in dict.fromkeys(k for f in flat for k in f) if key != "output.dir"]
    differ = [(key, *(json.dumps(f.get(key)) if key in f else "(absent)" for f in flat)) for key in keys
              if len({json.dumps(f.get(key), sort_keys=True) if key in f else "(absent)" for f in flat}) > 1]
    diff = (_table(("config entry", *(content.name for content in contents)), differ, "compare diff") if differ
            else '<p class="note">The two configs are the same (apart from output.dir).</p>')
    return (f"<h3>What differs</h3>{diff}<details><summary>Both configs in full</summary>"
            f'<div class="pair">{"".join(blocks)}</div></details>')


_STYLE = """
:root { --ink:#1f2933; --muted:#61707f; --line:#e3e8ee; --bg:#f6f8fa; --card:#fff; --accent:#2457a6; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header.top { background:#17324d; color:#fff; padding:22px 32px 18px; }
header.top h1 { margin:0; font-size:24px; font-weight:600; word-break:break-all; }
header.top .sub { margin:4px 0 0; color:#c9d6e3; font-size:14px; }
nav { position:sticky; top:0; z-index:1; background:#fff; border-bottom:1px solid var(--line);
  padding:8px 32px; font-size:13px; }
nav a { color:var(--accent); text-decoration:none; margin-right:16px; white-space:nowrap; }
nav a:hover { text-decoration:underline; }
main { max-width:1280px; margin:0 auto; padding:20px 32px 40px; display:grid;
  grid-template-columns:repeat(2, minmax(0, 1fr)); gap:20px; align-items:start; }
main > .notes, section.wide { grid-column:1 / -1; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:18px 22px;
  min-width:0; scroll-margin-top:44px; }
h2 { font-size:18px; margin:0 0 10px; font-weight:600; }
h3 { font-size:15px; margin:14px 0 8px; font-weight:600; }
.caption, .note { color:var(--muted); font-size:13px; margin:0 0 12px; }
.notes { background:#fff8e6; border:1px solid #f0d48a; border-radius:8px; padding:10px 18px; }
.notes ul { margin:4px 0; padding-left:20px; font-size:13px; }
.notes strong { font-size:13px; }
dl.facts { display:grid; grid-template-columns:repeat(auto-fill, minmax(190px, 1fr)); gap:10px; margin:0; }
dl.facts div { background:var(--bg); border-radius:6px; padding:8px 12px; min-width:0; }
dl.facts dt { color:var(--muted); font-size:12px; }
dl.facts dd { margin:0; font-weight:600; overflow-wrap:anywhere; }
table { border-collapse:collapse; font-size:14px; width:100%; }
th, td { text-align:left; padding:5px 14px 5px 0; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12px; letter-spacing:.02em; }
td + td { font-variant-numeric:tabular-nums; font-family:ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size:13px; overflow-wrap:anywhere; }
tbody tr:nth-child(even) { background:#fafbfc; }
table.compare { width:100%; }
figure { margin:0; }
figure img { display:block; max-width:100%; height:auto; border:1px solid var(--line); border-radius:4px;
  background:#fff; }
.fig-curves img, .fig-activity img, .fig-firing img, .fig-precision_recall img, .fig-confusion img {
  max-width:min(100%, 560px); }
.fig-filters img, .fig-reconstructions img { image-rendering:pixelated; }
.fig-reconstructions img { max-width:min(100%, 720px); }
table.firing { margin-top:12px; }
figcaption.stale { color:#9a6700; font-size:12px; margin-top:4px; }
.pair { display:grid; grid-template-columns:repeat(2, minmax(0, 1fr)); gap:20px; }
.side-name { font-weight:600; font-size:13px; color:var(--accent); margin-bottom:6px; overflow-wrap:anywhere; }
.missing { color:var(--muted); font-size:13px; border:1px dashed var(--line); border-radius:6px; padding:24px;
  text-align:center; }
pre.config { background:#0f1e2e; color:#d7e1ea; padding:14px 16px; border-radius:6px; overflow:auto;
  font:12.5px/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; margin:0; max-height:560px; }
pre.config .key { color:#8cc4ff; }
pre.config .comment { color:#7f95a8; font-style:italic; }
details summary { cursor:pointer; color:var(--accent); font-size:14px; margin:10px 0; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:0 0 30px; }
@media (max-width:900px) { .pair, main { grid-template-columns:1fr; } main { padding:12px; } }
"""


#: Sections that take the page's full width in a one-run report (the others go two to a row).
_WIDE = ("overview", "reconstructions", "angles", "config")


def _wide_sections(anchors: Sequence[str], *, single: bool) -> set[str]:
    """The sections to draw full width: all of them in a comparison (each holds a pair); for one
    run, :data:`_WIDE` and the last of an odd run of half-width sections (no hole beside it)."""
    if not single:
        return set(anchors)
    wide, pending = set(), []
    for anchor in [*anchors, None]:
        if anchor is None or anchor in _WIDE:
            if len(pending) % 2:
                wide.add(pending[-1])
            pending = []
            if anchor is not None:
                wide.add(anchor)
        else:
            pending.append(anchor)
    return wide


def _features_sections(contents: Sequence[RunContent]) -> list[tuple[str, str, str]]:
    """A link to each text run's feature dashboards (none for other runs)."""
    links = [(content, content.features_page) for content in contents if content.features_page]
    if not links:
        return []
    items = "".join(f'<li>{_e(content.name + ": ") if len(contents) > 1 else ""}<a href="{_e(page)}">'
                    f"{_e(page)}</a>: per latent, its top activating contexts (tokens shaded by activation), "
                    "its activation histogram and its decoder direction's top output tokens</li>"
                    for content, page in links)
    return [("features", "Feature dashboards", f"<ul>{items}</ul>")]


def render_html(contents: Sequence[RunContent]) -> str:
    """The page of one run, or the side-by-side comparison of two, as one HTML document."""
    if not 1 <= len(contents) <= 2:
        raise DataError(f"a report shows one run or compares two, got {len(contents)}")
    if len(contents) == 2 and contents[0].name == contents[1].name:  # a/run vs b/run: name the parents too
        contents = [dataclasses.replace(content, label=f"{content.run_dir.resolve().parent.name}/{content.name}")
                    for content in contents]
    names = [content.name for content in contents]
    if len(contents) == 1:
        facts = _facts(contents[0])
        title = f"{names[0]} — sparseae run report"
        subtitle = " · ".join(str(facts[k]) for k in ("model", "training data", "status") if k in facts)
    else:
        title = f"{names[0]} vs {names[1]} — sparseae comparison"
        subtitle = "Two runs side by side: " + " · ".join(
            f"{content.name}: {_facts(content).get('model', '?')} on {_facts(content).get('training data', '?')}"
            for content in contents)
    sections = [("overview", "Overview", _facts_section(contents)),
                ("metrics", "Final metrics", _metrics_section(contents)),
                *_figure_sections(contents),
                *_features_sections(contents),
                ("config", "Config", _config_section(contents))]
    wide = _wide_sections([anchor for anchor, _, _ in sections], single=len(contents) == 1)
    notes = "".join(f"<li>{_e(content.name + ': ' if len(contents) > 1 else '')}{_e(note)}</li>"
                    for content in contents for note in content.notes)
    nav = "".join(f'<a href="#{_e(anchor)}">{_e(heading)}</a>' for anchor, heading, _ in sections)
    body = "".join(f'<section id="{_e(anchor)}" class="{"wide" if anchor in wide else "half"}">'
                   f"<h2>{_e(heading)}</h2>{inner}</section>" for anchor, heading, inner in sections)
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    sources = ", ".join(str(content.run_dir.resolve()) for content in contents)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="sparseae {_e(__version__)}">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f'<header class="top"><h1>{_e(title)}</h1><p class="sub">{_e(subtitle)}</p></header>\n'
        f"<nav>{nav}</nav>\n<main>\n"
        + (f'<div class="notes"><strong>Notes</strong><ul>{notes}</ul></div>\n' if notes else "")
        + body
        + f"\n</main>\n<footer>Made by sparseae {_e(__version__)} on {_e(when)} from {_e(sources)}</footer>\n"
        "</body>\n</html>\n")


# ------------------------------------------------------------------------------------ writing

def default_report_path(run_dir: str | os.PathLike, compare_with: str | os.PathLike | None = None) -> Path:
    """``RUN_DIR/report.html``, or ``RUN_DIR/compare-<other run's name>.html`` for a comparison."""
    run_dir = Path(run_dir)
    if compare_with is None:
        return run_dir / REPORT_NAME
    other = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(compare_with).resolve().name).strip("._") or "run"
    return run_dir / f"{COMPARISON_PREFIX}{other}.html"


def stale_warning(content: RunContent) -> str | None:
    """One line naming the pictures of ``content`` taken from its run folder instead of drawn now
    (and why), or None when there are none."""
    if not content.stale:
        return None
    names = ", ".join(f"{stem}.png" for stem in sorted(content.stale))
    why = f": {content.notes[-1]}" if content.notes else ""
    return (f"{content.run_dir}: {names} could not be drawn now; the report shows the ones training "
            f"wrote{why}")


#: What every page :func:`render_html` writes carries near its top (how an old report is told apart).
_GENERATOR_MARK = b'<meta name="generator" content="sparseae'


def _check_replaceable(target: Path) -> None:
    """:class:`OutputExistsError` unless ``target`` is free or an earlier sparseae report: a report
    never replaces the user's other files (``--out data.npy``) nor a device (``--out /dev/sda``)."""
    if not os.path.lexists(target):
        return
    if target.is_dir():
        raise OutputExistsError(f"{target} is a folder; the report is a file: choose another --out")
    if not target.is_file():
        raise OutputExistsError(f"{target} exists and is not a regular file; refusing to replace it with "
                                "the report: choose another --out")
    try:
        with open(target, "rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise OutputExistsError(f"{target} exists and cannot be read ({exc.strerror or exc}); refusing to "
                                "replace it with the report") from None
    if _GENERATOR_MARK not in head:
        raise OutputExistsError(f"{target} exists and is not a sparseae report; refusing to replace it: "
                                "choose another --out (or remove the file)")


def write_report(run_dir: str | os.PathLike, compare_with: str | os.PathLike | None = None, *,
                 out: str | os.PathLike | None = None, device: str | None = None,
                 warn: Callable[[str], Any] | None = None) -> Path:
    """Write the HTML report of ``run_dir`` (beside ``compare_with``'s when given) and return its path.

    ``out``: the file to write (an existing folder gets the default name inside it); default
    :func:`default_report_path`. Written atomically. Raises :class:`CheckpointError` for a path
    that is not a run folder. ``warn(line)``: told of each run whose page shows old pictures
    (:func:`stale_warning`).
    """
    runs = [Path(run_dir)] + ([Path(compare_with)] if compare_with is not None else [])
    for path in runs:
        _check_run_folder(path)
    _device(device)
    target = default_report_path(*runs) if out is None else Path(out)
    if out is not None and target.is_dir():
        target = target / default_report_path(*runs).name
    _check_replaceable(target)
    contents = [collect_run(path, device=device) for path in runs]
    if compare_with is None:  # a text run: its feature dashboards beside the page
        from .features import write_feature_page

        features_target = target.with_name(f"{target.stem}-features.html")
        _check_replaceable(features_target)
        written, why = write_feature_page(runs[0], features_target, device=device)
        if written is not None:
            contents[0].features_page = written.name
        elif why is not None:
            contents[0].notes.append(why)
    if warn is not None:
        for line in filter(None, map(stale_warning, contents)):
            warn(line)
    page = render_html(contents)
    write_text_atomic(target, page)
    return target
