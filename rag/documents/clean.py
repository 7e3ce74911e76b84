"""Tell web boilerplate from article text, line by line, without changing the text.

Nothing is deleted: the functions return spans of the original string, so every offset
the pipeline produces still points into the file as it is on disk."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Whole-line chrome found on article pages: share bars, cookie banners, comment forms,
# post footers, navigation. Matched case-insensitively against the stripped line.
_BOILERPLATE = re.compile(
    r"""(
      ^(twitter|facebook|linkedin|flipboard|email|e-mail|pin\ it!?|partager|tweet|[|•·×x])(\s+|$)((twitter|facebook|linkedin|flipboard|email|pin\ it!?|[|•·])(\s+|$))*$
    | lien\ permanent | \|\s*pin\ it | publié\ dans .*\| | commentaires?\ \(\d+\)
    | en\ poursuivant\ votre\ navigation | utilisation\ de\ cookies | accept(ez|er)\ les\ cookies
    | ^(ok|x|×|media|réagir|publicités?|accueil|menu)$
    | laisser\ un\ commentaire | leave\ a\ (reply|comment) | vous\ commentez\ à\ l'aide
    | entrez\ vos\ coordonnées | connexion\ à\ %s | %d\ blogueurs | répondre\ au\ commentaire
    | signaler\ un\ abus | ^one\ response\ to | ^\d+\.\s*ping | les\ commentaires\ postés
    | ^\d+\ commentaires?$ | ^(logo\ wordpress\.com|image\ twitter|photo\ facebook|photo\ google\+)$
    | suivez-nous | recevez\ chaque\ jour | article\ précédent | retour\ au\ sommaire
    | ^last\ updated | carte\ du\ site | ^contactez-nous | ^rechercher\.\.\.$ | ^english\ version$
    | ^-{5,} | ^[\w-]+\.(jpe?g|png|gif)\b(\s*\(\d+\ octets\))?\s*$
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# A post footer ends one blog post; the next kept line starts another.
_POST_FOOTER = re.compile(r"publié dans .*\|\s*lien permanent", re.IGNORECASE)
_DATE_LINE = re.compile(r"^\d{1,2}/\d{1,2}/\d{2,4}$")
_MENU_RUN = 5  # this many short lines in a row are navigation, not prose
_MENU_WORDS = 4
_MIN_SECTION_WORDS = 15


@dataclass(frozen=True)
class Line:
    start: int
    end: int  # without the line break
    text: str  # stripped, non-breaking spaces made plain


@dataclass(frozen=True)
class Section:
    """A contiguous span of article text (no boilerplate line inside) and the title it falls under."""

    start: int
    end: int
    title: str


def split_lines(text: str) -> list[Line]:
    lines: list[Line] = []
    pos = 0
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
        lines.append(Line(pos, pos + len(body), _plain(body)))
        pos += len(raw)
    return lines


def _plain(s: str) -> str:
    return " ".join(s.replace("\u00a0", " ").replace("\u202f", " ").split())


def is_boilerplate(line: str) -> bool:
    return bool(_BOILERPLATE.search(line))


def _is_short(line: str) -> bool:
    return 0 < len(line.split()) <= _MENU_WORDS and not line.endswith((".", "!", "?", ":", "…"))


def boilerplate_flags(lines: list[Line]) -> list[bool]:
    """True for each line that is chrome: a known pattern, or part of a run of menu items."""
    flags = [is_boilerplate(ln.text) for ln in lines]
    nonblank = [i for i, ln in enumerate(lines) if ln.text]
    run: list[int] = []
    for i in nonblank + [-1]:
        # known chrome inside a menu does not break the run of short items around it
        if i >= 0 and (flags[i] or _is_short(lines[i].text)):
            run.append(i)
            continue
        if sum(1 for j in run if not flags[j]) >= _MENU_RUN:
            for j in run:
                flags[j] = True
        run = []
    return flags


def find_title(text: str) -> str:
    """The article's title: an early line repeated later (pages often print it twice),
    else the first line of prose that is not chrome or a date."""
    lines = split_lines(text)
    flags = boilerplate_flags(lines)
    kept = [ln.text for ln, bad in zip(lines, flags) if ln.text and not bad and not _DATE_LINE.match(ln.text)]
    counts: dict[str, int] = {}
    for t in kept:
        counts[t] = counts.get(t, 0) + 1
    for t in kept[:15]:
        if counts[t] > 1 and len(t.split()) >= 3:
            return _clip(t)
    for t in kept:
        if len(t.split()) >= 2:
            return _clip(t)
    return _clip(kept[0]) if kept else ""


def _clip(title: str, limit: int = 120) -> str:
    title = title.lstrip("#").strip() or title  # a Markdown heading's marks are not part of its title
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def sections(text: str, doc_title: str, clean: bool = True) -> list[Section]:
    """Spans of ``text`` to chunk. With ``clean`` off, the whole text is one section.

    Boilerplate lines split spans; a date line or a post footer starts a new blog post,
    whose first line of prose becomes the title of the spans under it."""
    if not clean:
        return [Section(0, len(text), doc_title)]
    lines = split_lines(text)
    flags = boilerplate_flags(lines)
    out: list[Section] = []
    title = doc_title
    new_post = False
    span: list[Line] = []

    def flush() -> None:
        if span:
            out.append(Section(span[0].start, span[-1].end, title))
            span.clear()

    for ln, bad in zip(lines, flags):
        if not ln.text:
            continue
        if _DATE_LINE.match(ln.text) or _POST_FOOTER.search(ln.text):
            flush()
            new_post = True
            continue
        if bad:
            # a heading or a caption alone says little: it joins the prose after the chrome
            if sum(len(x.text.split()) for x in span) >= _MIN_SECTION_WORDS:
                flush()
            continue
        if new_post:
            flush()
            title = _clip(ln.text)
            new_post = False
        span.append(ln)
    flush()
    return out
