"""The comparison report as a list of blocks, rendered both as a self-contained HTML page and as Markdown.

gen_jax/report/build.py decides what the report says; this module only lays it out, from the same blocks for
both formats, so the two say the same thing. The HTML page has its CSS inline, no JavaScript, and only relative
links (images under assets/), so it opens from disk and survives being zipped. Every piece of text is escaped.
"""
from __future__ import annotations

import dataclasses
import html
import urllib.parse
from typing import Sequence, Union


@dataclasses.dataclass
class Cell:
  """A piece of text; bold marks the best value of a row; title is a hover note (HTML only)."""
  text: str
  bold: bool = False
  title: str = ""


Text = Union[str, Cell]


@dataclasses.dataclass
class Heading:
  level: int
  text: str
  anchor: str = ""


@dataclasses.dataclass
class Paragraph:
  spans: Sequence[Text]
  note: bool = False          # small print (protocol remarks, captions)


@dataclasses.dataclass
class BulletList:
  items: Sequence[Sequence[Text]]


@dataclasses.dataclass
class Table:
  header: Sequence[Text]
  rows: Sequence[Sequence[Text]]
  caption: str = ""
  section_rows: frozenset = frozenset()   # indices of rows that are a section title spanning the table


@dataclasses.dataclass
class Figure:
  path: str | None            # relative to the report folder, '/'-separated; None = no image for this run
  caption: str


@dataclasses.dataclass
class Figures:
  """Images side by side (one per run, or one per curve)."""
  items: Sequence[Figure]


Block = Union[Heading, Paragraph, BulletList, Table, Figures]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1.5em; color: #222; line-height: 1.4; }
h1 { font-size: 1.7em; border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { font-size: 1.35em; margin-top: 1.8em; border-bottom: 1px solid #bbb; }
h3 { font-size: 1.1em; margin-top: 1.3em; }
table { border-collapse: collapse; margin: .6em 0 1.2em 0; font-size: .9em; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: .3em; }
th, td { border-top: 1px solid #ccc; border-bottom: 1px solid #ccc; padding: .25em .7em; text-align: left;
         vertical-align: top; }
thead th { border-bottom: 2px solid #333; border-top: 2px solid #333; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.section td { background: #f0f0f0; font-weight: 600; }
.note { font-size: .85em; color: #555; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; max-width: 420px; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; image-rendering: pixelated; }
figcaption { font-size: .85em; color: #333; text-align: center; }
.missing { width: 200px; height: 120px; border: 1px dashed #aaa; display: flex; align-items: center;
           justify-content: center; color: #888; font-size: .85em; }
code { font-size: .95em; }
"""


def _esc(text: str) -> str:
  return html.escape(str(text), quote=True)


def _span_html(span: Text) -> str:
  if isinstance(span, Cell):
    inner = f"<strong>{_esc(span.text)}</strong>" if span.bold else _esc(span.text)
    return f'<span title="{_esc(span.title)}">{inner}</span>' if span.title else inner
  return _esc(span)


def _is_number(span: Text) -> bool:
  text = span.text if isinstance(span, Cell) else str(span)
  head = text.split(" ")[0].lstrip("-+")
  return bool(head) and (head[0].isdigit() or head in ("—", "nan", "inf"))


def _cell_html(span: Text, tag: str = "td") -> str:
  cls = ' class="num"' if tag == "td" and _is_number(span) else ""
  title = f' title="{_esc(span.title)}"' if isinstance(span, Cell) and span.title else ""
  inner = span if not isinstance(span, Cell) else Cell(span.text, span.bold)
  return f"<{tag}{cls}{title}>{_span_html(inner)}</{tag}>"


def _src(path: str) -> str:
  return _esc(urllib.parse.quote(path, safe="/"))


def to_html(title: str, blocks: Sequence[Block]) -> str:
  out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{_esc(title)}</title>",
         f"<style>{_CSS}</style>", "</head>", "<body>"]
  for block in blocks:
    if isinstance(block, Heading):
      anchor = f' id="{_esc(block.anchor)}"' if block.anchor else ""
      out.append(f"<h{block.level}{anchor}>{_esc(block.text)}</h{block.level}>")
    elif isinstance(block, Paragraph):
      cls = ' class="note"' if block.note else ""
      out.append(f"<p{cls}>{''.join(_span_html(s) for s in block.spans)}</p>")
    elif isinstance(block, BulletList):
      out.append("<ul>" + "".join(f"<li>{''.join(_span_html(s) for s in item)}</li>" for item in block.items)
                 + "</ul>")
    elif isinstance(block, Table):
      out.append("<table>")
      if block.caption:
        out.append(f"<caption>{_esc(block.caption)}</caption>")
      out.append("<thead><tr>" + "".join(_cell_html(h, "th") for h in block.header) + "</tr></thead><tbody>")
      for i, row in enumerate(block.rows):
        if i in block.section_rows:
          out.append(f'<tr class="section"><td colspan="{len(block.header)}">{_span_html(row[0])}</td></tr>')
        else:
          out.append("<tr>" + "".join(_cell_html(c) for c in row) + "</tr>")
      out.append("</tbody></table>")
    elif isinstance(block, Figures):
      out.append('<div class="figs">')
      for fig in block.items:
        if fig.path:
          img = f'<a href="{_src(fig.path)}"><img src="{_src(fig.path)}" alt="{_esc(fig.caption)}"></a>'
        else:
          img = '<div class="missing">no image</div>'
        out.append(f"<figure>{img}<figcaption>{_esc(fig.caption)}</figcaption></figure>")
      out.append("</div>")
    else:
      raise TypeError(f"unknown report block {type(block).__name__}")
  out += ["</body>", "</html>", ""]
  return "\n".join(out)


def _md_escape(text: str) -> str:
  """Markdown-safe inline text: table pipes, '*' emphasis, code, links and HTML-looking characters are escaped
  (underscores are left alone: inside words they do not start emphasis in CommonMark, and run names have them)."""
  text = str(text).replace("\\", "\\\\").replace("\n", " ")
  for ch in "|*`[]<>":
    text = text.replace(ch, "\\" + ch)
  return text


def _span_md(span: Text) -> str:
  if isinstance(span, Cell):
    return f"**{_md_escape(span.text)}**" if span.bold else _md_escape(span.text)
  return _md_escape(span)


def _md_table(header: Sequence[Text], rows: Sequence[Sequence[Text]], section_rows=frozenset()) -> list[str]:
  lines = ["| " + " | ".join(_span_md(h) for h in header) + " |", "|" + "---|" * len(header)]
  for i, row in enumerate(rows):
    if i in section_rows:
      cells = [f"**{_md_escape(_text(row[0]))}**"] + [""] * (len(header) - 1)
    else:
      cells = [_span_md(c) for c in row]
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def _text(span: Text) -> str:
  return span.text if isinstance(span, Cell) else str(span)


def _md_image(path: str | None, caption: str) -> str:
  if not path:
    return "(no image)"
  return f"![{_md_escape(caption)}]({urllib.parse.quote(path, safe='/')})"


def to_markdown(title: str, blocks: Sequence[Block]) -> str:
  out = [f"# {_md_escape(title)}", ""]
  for block in blocks:
    if isinstance(block, Heading):
      if block.level == 1:
        continue  # the title line above
      out += ["#" * block.level + " " + _md_escape(block.text), ""]
    elif isinstance(block, Paragraph):
      text = "".join(_span_md(s) for s in block.spans)
      out += [f"*{text}*" if block.note and text and "**" not in text else text, ""]
    elif isinstance(block, BulletList):
      out += ["- " + "".join(_span_md(s) for s in item) for item in block.items] + [""]
    elif isinstance(block, Table):
      if block.caption:
        out += [f"**{_md_escape(block.caption)}**", ""]
      out += _md_table(block.header, block.rows, block.section_rows) + [""]
    elif isinstance(block, Figures):
      items = list(block.items)
      for start in range(0, len(items), 4):  # at most 4 images side by side
        chunk = items[start:start + 4]
        out += _md_figure_row(chunk)
        out.append("")
    else:
      raise TypeError(f"unknown report block {type(block).__name__}")
  return "\n".join(out).rstrip() + "\n"


def _md_figure_row(figs: Sequence[Figure]) -> list[str]:
  """A table whose header is the captions and whose one row is the images (renders side by side)."""
  header = "| " + " | ".join(_md_escape(f.caption) for f in figs) + " |"
  return [header, "|" + "---|" * len(figs), "| " + " | ".join(_md_image(f.path, f.caption) for f in figs) + " |"]
