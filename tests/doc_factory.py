"""Real documents made by real libraries for the reader tests: web pages around seed text with the chrome
of a real article page, PDFs of several pages (fpdf2, with the header and footer a browser prints), Word
files (python-docx), and damaged, encrypted, scanned and oversized variants."""

from __future__ import annotations

import html
import io
import zipfile
from pathlib import Path

import matplotlib
from fpdf import FPDF

from rag.documents.clean import boilerplate_flags, find_title, split_lines

# matplotlib ships DejaVu, which has every French character
FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
SCRIPT_MARKER = "tracker-5b1f0c"  # inside the pages' inline script: must never reach the index
STYLE_MARKER = "cookie-banner-7d2e"  # a class name inside the pages' inline style


def paragraphs_of(text: str) -> list[str]:
    """The non-blank lines of a seed (a saved web page: one paragraph a line)."""
    return [ln.text for ln in split_lines(text) if ln.text]


def is_subheading(line: str) -> bool:
    """A short line without a sentence end: on the page the seed was copied from, a subheading."""
    return len(line.split()) <= 6 and not line.rstrip().endswith((".", "!", "?", ":", "…", ";", ","))


def article_page(text: str, *, url: str = "", author: str = "", date: str = "", extra_body: str = "") -> bytes:
    """A web page holding the seed ``text`` as its article, with navigation, a cookie banner, a share bar, a
    comment form, footer links and an inline script and style around it; the seed's own chrome lines (share
    buttons, "leave a comment") sit in the page's chrome elements, as on the site it was saved from."""
    title = find_title(text)
    lines = [ln for ln in split_lines(text) if ln.text]
    flags = boilerplate_flags(lines)
    body = []
    for line, chrome in zip(lines, flags):
        words = html.escape(line.text)
        if line.text == title:
            body.append(f"<h1>{words}</h1>" if not any("<h1>" in b for b in body) else f'<p class="lede">{words}</p>')
        elif chrome:
            body.append(f'<div class="share-bar"><a href="#">{words}</a></div>')
        elif is_subheading(line.text):
            body.append(f"<h2>{words}</h2>")
        else:
            body.append(f"<p>{words}</p>")
    head = [f"<title>{html.escape(title)} | Le Journal du Commerce</title>", '<meta charset="utf-8">']
    if url:
        head.append(f'<link rel="canonical" href="{html.escape(url)}">')
    if author:
        head.append(f'<meta name="author" content="{html.escape(author)}">')
    if date:
        head.append(f'<meta property="article:published_time" content="{date}">')
    return f"""<!DOCTYPE html>
<html lang="fr"><head>{''.join(head)}
<style>.{STYLE_MARKER} {{ position: fixed; bottom: 0 }}</style>
<script>window.dataLayer = [{{"id": "{SCRIPT_MARKER}"}}]; document.write("<p>injected</p>");</script>
</head><body>
<header><nav class="menu"><ul><li><a href="/">Accueil</a></li><li><a href="/commerce">Commerce</a></li>
<li><a href="/numerique">Numérique</a></li><li><a href="/emploi">Emploi</a></li><li><a href="/abonnement">S'abonner</a></li>
</ul></nav></header>
<div class="{STYLE_MARKER}" id="cookies">En poursuivant votre navigation, vous acceptez l'utilisation de cookies
pour mesurer l'audience. <button>OK</button> <a href="/cookies">En savoir plus</a></div>
<main><article>{''.join(body)}{extra_body}</article>
<section class="comments" id="respond"><h3>Laisser un commentaire</h3>
<form action="/comment" method="post"><label>Nom</label><input name="nom"><label>Commentaire</label>
<textarea name="texte"></textarea><input type="submit" value="Publier"></form></section></main>
<footer><ul><li><a href="/mentions">Mentions légales</a></li><li><a href="/contact">Contact</a></li>
<li><a href="/plan">Plan du site</a></li></ul><p>© 2015 Le Journal du Commerce. Tous droits réservés.</p></footer>
</body></html>""".encode()


class _PrintedPage(FPDF):
    """A page as a browser prints it: date and title on top, address and page number at the bottom."""

    def __init__(self, title: str, url: str) -> None:
        super().__init__()
        self.doc_title, self.url = title, url
        self.add_font("dejavu", fname=str(FONT))
        self.set_auto_page_break(True, margin=18)

    def header(self) -> None:
        self.set_font("dejavu", size=8)
        self.cell(0, 5, f"02/03/2015 10:14    {self.doc_title[:70]}", new_x="LMARGIN", new_y="NEXT")
        self.ln(4)

    def footer(self) -> None:
        if self.url:
            self.set_y(-12)
            self.set_font("dejavu", size=8)
            self.cell(0, 5, f"{self.url}    {self.page_no()}/{{nb}}")


def pdf_document(paragraphs: list[str], *, title: str = "", author: str = "", url: str = "") -> bytes:
    """A PDF of ``paragraphs`` (several pages when long), printed with header and footer."""
    pdf = _PrintedPage(title or paragraphs[0], url)
    if title:
        pdf.set_title(title)
    if author:
        pdf.set_author(author)
    pdf.add_page()
    pdf.set_font("dejavu", size=11)
    for paragraph in paragraphs:
        pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    return bytes(pdf.output())


def pdf_pages_of(raw: bytes) -> list[str]:
    """Each page's text as pypdf extracts it, for checks independent of the reader's offsets."""
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(io.BytesIO(raw)).pages]


def encrypted_pdf(paragraphs: list[str], user_password: str) -> bytes:
    """An RC4-encrypted PDF; with an empty user password it opens without one (only editing is locked)."""
    from fpdf.enums import EncryptionMethod

    pdf = _PrintedPage(paragraphs[0], "")
    pdf.set_encryption(owner_password="owner-secret", user_password=user_password, encryption_method=EncryptionMethod.RC4)
    pdf.add_page()
    pdf.set_font("dejavu", size=11)
    for paragraph in paragraphs:
        pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def scanned_pdf(pages: int = 2) -> bytes:
    """Pages that are only pictures (a scan): no text layer."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (800, 1100), "white")
    draw = ImageDraw.Draw(picture)
    for y in range(100, 1000, 40):
        draw.line((80, y, 720, y), fill="black", width=6)  # lines of "text" as ink, not characters
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
        pdf.image(io.BytesIO(buffer.getvalue()), x=10, y=10, w=190)
    return bytes(pdf.output())


def damaged(raw: bytes) -> bytes:
    """The first third of a file, as a cut download leaves it."""
    return raw[: len(raw) // 3]


def word_document(blocks: list[str | list[list[str]]], *, title: str = "", author: str = "") -> bytes:
    """A .docx: a string is a paragraph (a heading when it starts with '# ' or is a short line without a
    sentence end, as a subheading is), a list of rows a table."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.core_properties.author = author
    for block in blocks:
        if isinstance(block, list):
            table = document.add_table(rows=len(block), cols=len(block[0]))
            for r, row in enumerate(block):
                for c, value in enumerate(row):
                    table.cell(r, c).text = value
        elif block.startswith("# ") or is_subheading(block):
            document.add_heading(block.removeprefix("# "), level=1)
        else:
            document.add_paragraph(block)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def word_bomb(raw_docx: bytes, unpacked_bytes: int) -> bytes:
    """A real .docx plus one member of zeros that unpacks to ``unpacked_bytes`` (a few hundred KB packed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw_docx)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dest:
        for item in source.infolist():
            dest.writestr(item, source.read(item))
        with dest.open("word/media/padding.bin", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(unpacked_bytes >> 20):
                member.write(block)
    return out.getvalue()


def plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "pas un document Word")
    return out.getvalue()


SITE = "https://www.journal-du-commerce.example/articles/"
CONVERTED_KINDS = {"html": ".html", "pdf": ".pdf", "docx": ".docx"}


def convert_seed(text: str, stem: str, kind: str) -> tuple[str, bytes]:
    """(file name, bytes) of a seed article as a web page, a printed PDF or a Word file."""
    paragraphs = paragraphs_of(text)
    title = find_title(text)
    url = f"{SITE}{stem}.html"
    if kind == "html":
        raw = article_page(text, url=url, author="La rédaction", date="2015-03-02T10:00:00+01:00")
    elif kind == "pdf":
        raw = pdf_document(paragraphs, title=title, author="La rédaction", url=url)
    elif kind == "docx":
        raw = word_document(paragraphs, title=title, author="La rédaction")
    else:
        raise ValueError(kind)
    return stem + CONVERTED_KINDS[kind], raw


def convert_seeds(seeds_dir: Path, dest: Path, kind: str) -> dict[str, str]:
    """Every seed of ``seeds_dir`` converted into ``dest``; returns {seed name: converted name}."""
    dest.mkdir(parents=True, exist_ok=True)
    names = {}
    for seed in sorted(seeds_dir.glob("*.txt")):
        name, raw = convert_seed(seed.read_text(encoding="utf-8"), seed.stem, kind)
        (dest / name).write_bytes(raw)
        names[seed.name] = name
    return names
