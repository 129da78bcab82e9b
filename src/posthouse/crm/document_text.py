"""The text of a document (a resume imported from an email): PDF, DOCX, ODT,
HTML and plain text. Kept free of the database so that the isolated reader
(`python -m posthouse.crm.document_text`, a child process under time and
memory limits) starts quickly.

Every file here may be hostile (it came in an email): the size is bounded
before anything is parsed, zip containers are checked before they are opened
(a zip bomb is refused by its declared sizes, which zipfile enforces while it
reads), pypdf runs under tighter decompression limits than its defaults, and
the text kept is capped. Anything that can't be read is a DocumentError with a
message safe to show, never a crash."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from html.parser import HTMLParser

from .errors import CrmError

MAX_DOCUMENT_SIZE = 20 * 1024 * 1024    # bytes of a file accepted
MAX_TEXT = 1024 * 1024                  # characters of text kept
MAX_UNZIPPED = 100 * 1024 * 1024        # a DOCX/ODT's parts, uncompressed, in all
MAX_ZIP_ENTRIES = 5000
MAX_PDF_PAGES = 2000
MAX_PDF_STREAM = 30 * 1024 * 1024       # a PDF stream, decoded
WORKER_TIMEOUT = 30.0                   # seconds an isolated extraction may take
WORKER_MEMORY = 1024 * 1024 * 1024      # bytes of address space an isolated extraction may use



class DocumentError(CrmError):
    """The document can't be read; the message is safe to show the user."""


# -- which kind of file ---------------------------------------------------------------
_BY_TYPE = {
    "application/pdf": "pdf", "application/x-pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.oasis.opendocument.text": "odt",
    "text/html": "html", "application/xhtml+xml": "html",
}
_BY_EXTENSION = {".pdf": "pdf", ".docx": "docx", ".odt": "odt", ".html": "html", ".htm": "html",
                 ".xhtml": "html", ".txt": "text", ".text": "text", ".md": "text", ".csv": "text",
                 ".rtf": None}


def _kind(filename: str, content_type: str, data: bytes) -> str:
    """What the first bytes plainly say (a PDF header, a DOCX's or ODT's zip:
    mail clients mislabel attachments), else the declared kind (content type,
    else the file name's extension). Unknown kinds are refused."""
    sniffed = _sniff(data)
    if sniffed:
        return sniffed
    ctype = (content_type or "").split(";")[0].strip().lower()
    kind = _BY_TYPE.get(ctype)
    if kind is None and ctype.startswith("text/") and ctype not in ("text/rtf",):
        kind = "text"
    if kind is None:
        ext = ("." + filename.rsplit(".", 1)[-1].lower()) if "." in (filename or "") else ""
        kind = _BY_EXTENSION.get(ext)
    if kind is None:
        head = data[:1024]
        if b"%PDF-" in head:
            kind = "pdf"
        elif data.startswith(b"PK\x03\x04"):
            kind = _zip_kind(data)
    if kind is None:
        raise DocumentError(f"{filename or 'the file'}: unsupported document type "
                            f"{content_type or 'unknown'} (PDF, DOCX, ODT, HTML or plain text)")
    return kind


def _sniff(data: bytes) -> str | None:
    if data[:1024].lstrip(b"\xef\xbb\xbf\x00\t\r\n ").startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    return None


def _zip_kind(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = set(z.namelist())
            if "word/document.xml" in names:
                return "docx"
            if "mimetype" in names and z.getinfo("mimetype").file_size < 200 and \
                    z.read("mimetype").strip() == b"application/vnd.oasis.opendocument.text":
                return "odt"
    except (zipfile.BadZipFile, OSError, KeyError, RuntimeError, ValueError):
        return None
    return None


# -- extraction -----------------------------------------------------------------------
def extract_text(filename: str, content_type: str, data: bytes, *,
                 max_size: int = MAX_DOCUMENT_SIZE, max_text: int = MAX_TEXT) -> str:
    """The text of a document, at most max_text characters; DocumentError if
    it is too big, of an unsupported type, encrypted, broken or garbage."""
    name = filename or "the file"
    if len(data) > max_size:
        raise DocumentError(f"{name}: {len(data)} bytes is over the limit of {max_size} bytes")
    if not data:
        raise DocumentError(f"{name}: the file is empty")
    kind = _kind(filename, content_type, data)
    try:
        text = _EXTRACTORS[kind](name, data, max_text)
    except DocumentError:
        raise
    except (MemoryError, RecursionError):
        raise DocumentError(f"{name}: the {kind.upper()} is too complex to read") from None
    except Exception as e:      # a parser's own error on a broken file: say so, never crash
        raise DocumentError(f"{name}: not a readable {kind.upper()} file ({type(e).__name__}: {str(e)[:200]})") from None
    text = _tidy(text)[:max_text]
    return text


def extract_text_isolated(filename: str, content_type: str, data: bytes, *,
                          max_size: int = MAX_DOCUMENT_SIZE, max_text: int = MAX_TEXT,
                          timeout: float | None = None, memory: int = WORKER_MEMORY) -> str:
    """extract_text in a child process with a time and a memory limit: a
    hostile file that makes a parser loop or balloon costs a refused document,
    never a stuck or swollen server."""
    name = filename or "the file"
    if len(data) > max_size:        # (refused before a process is started for it)
        raise DocumentError(f"{name}: {len(data)} bytes is over the limit of {max_size} bytes")
    header = json.dumps({"filename": filename, "content_type": content_type, "max_size": max_size,
                         "max_text": max_text, "memory": memory}).encode()
    try:
        done = subprocess.run([sys.executable, "-m", "posthouse.crm.document_text"],
                              input=len(header).to_bytes(4, "big") + header + bytes(data),
                              capture_output=True, timeout=timeout or WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DocumentError(f"{name}: reading it took longer than {timeout or WORKER_TIMEOUT:g} s; refused") from None
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        answer = None
    if done.returncode != 0 or not isinstance(answer, dict):
        raise DocumentError(f"{name}: the document could not be read (the reader stopped: "
                            f"{done.stderr.decode(errors='replace').strip().splitlines()[-1:] or done.returncode})")
    if "error" in answer:
        raise DocumentError(answer["error"])
    return answer["text"]


def _worker_main() -> None:
    """The child's side of extract_text_isolated: limits first, then the file."""
    raw = sys.stdin.buffer.read()
    size = int.from_bytes(raw[:4], "big")
    header = json.loads(raw[4:4 + size])
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (header["memory"], header["memory"]))
    except (ImportError, ValueError, OSError):
        pass
    try:
        text = extract_text(header["filename"], header["content_type"], raw[4 + size:],
                            max_size=header["max_size"], max_text=header["max_text"])
        answer = {"text": text}
    except DocumentError as e:
        answer = {"error": str(e)}
    except MemoryError:
        answer = {"error": f"{header['filename'] or 'the file'}: too big to read within the memory limit"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()


def _tidy(text: str) -> str:
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _pdf(name: str, data: bytes, max_text: int) -> str:
    if b"%PDF-" not in data[:1024]:
        raise DocumentError(f"{name}: not a PDF file (no %PDF header)")
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import FileNotDecryptedError, PdfReadError
    limits = dict(maximum_declared_stream_length=MAX_PDF_STREAM,
                  array_based_stream_maximum_output_length=MAX_PDF_STREAM,
                  zlib_maximum_output_length=MAX_PDF_STREAM, lzw_maximum_output_length=MAX_PDF_STREAM,
                  run_length_maximum_output_length=MAX_PDF_STREAM,
                  brotli_maximum_output_length=MAX_PDF_STREAM, jbig2_maximum_output_length=MAX_PDF_STREAM,
                  image_maximum_buffer_size=MAX_PDF_STREAM, page_tree_maximum_page_entries=MAX_PDF_PAGES * 10)
    with apply_configuration(**limits):
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
        except PdfReadError as e:
            raise DocumentError(f"{name}: a broken PDF ({e})") from None
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password (only
            # printing or copying restricted): those open; others can't.
            try:
                opened = reader.decrypt("")
            except Exception:
                opened = 0
            if not opened:
                raise DocumentError(f"{name}: the PDF is encrypted with a password")
        try:
            pages = reader.pages
            count = len(pages)
        except FileNotDecryptedError:
            raise DocumentError(f"{name}: the PDF is encrypted with a password") from None
        if count == 0:
            raise DocumentError(f"{name}: a broken PDF (no pages found)")
        out, length = [], 0
        for i in range(min(count, MAX_PDF_PAGES)):
            text = pages[i].extract_text() or ""
            out.append(text)
            length += len(text)
            if length >= max_text:
                break
        return "\n\n".join(out)


def _check_zip(name: str, data: bytes, what: str) -> zipfile.ZipFile:
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DocumentError(f"{name}: not a valid {what} file (a broken zip container)") from None
    infos = z.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise DocumentError(f"{name}: the {what} has too many parts ({len(infos)})")
    total = sum(i.file_size for i in infos)
    if total > MAX_UNZIPPED:
        raise DocumentError(f"{name}: the {what} unpacks to {total} bytes, over the limit of {MAX_UNZIPPED}")
    return z


def _docx(name: str, data: bytes, max_text: int) -> str:
    z = _check_zip(name, data, "DOCX")
    if "word/document.xml" not in z.namelist():
        raise DocumentError(f"{name}: not a DOCX file (no word/document.xml)")
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph
    document = docx.Document(io.BytesIO(data))
    out: list[str] = []

    def block(parent, element, depth=0) -> None:
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            out.append(Paragraph(element, parent).text)
        elif tag == "tbl" and depth < 20:
            for row in Table(element, parent).rows:
                cells = []
                for cell in row.cells:
                    inner: list[str] = []
                    for child in cell._element.iterchildren():
                        start = len(out)
                        block(cell, child, depth + 1)
                        inner.extend(out[start:])
                        del out[start:]
                    cells.append("\n".join(t for t in inner if t))
                out.append("\t".join(cells))
        elif tag == "sdt":        # content controls (forms) hold paragraphs too
            content = next((c for c in element.iterchildren() if c.tag.endswith("}sdtContent")), None)
            if content is not None:
                for child in content.iterchildren():
                    block(parent, child, depth + 1)

    def story(container) -> None:
        for child in container._element.iterchildren():
            block(container, child)
            if sum(map(len, out)) > max_text:
                return

    # Contact details in a resume are often in the page header.
    for section in document.sections:
        for part in (section.header, section.first_page_header):
            if not part.is_linked_to_previous:
                story(part)
    body = document._body
    for child in body._element.iterchildren():
        block(body, child)
    return "\n".join(out)


def _odt(name: str, data: bytes, max_text: int) -> str:
    _check_zip(name, data, "ODT").close()
    from odf import teletype
    from odf.namespaces import TEXTNS
    from odf.opendocument import load
    document = load(io.BytesIO(data))
    out: list[str] = []
    paragraph = {(TEXTNS, "p"), (TEXTNS, "h")}

    # Paragraphs and headings in document order; table cells and lists hold paragraphs too.
    stack = [document.text]
    while stack and sum(map(len, out)) <= max_text:
        element = stack.pop()
        if getattr(element, "qname", None) in paragraph:
            out.append(teletype.extractText(element))
            continue
        stack.extend(reversed(getattr(element, "childNodes", [])))
    return "\n".join(out)


class _HtmlText(HTMLParser):
    _skip = {"script", "style", "head", "title", "template", "noscript"}
    _block = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol",
              "section", "article", "header", "footer", "blockquote", "pre", "hr", "dt", "dd"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._skip:
            self.skipping += 1
        elif tag in self._block:
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append("\t")

    def handle_endtag(self, tag):
        if tag in self._skip:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._block:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.out.append(data)


def _html(name: str, data: bytes, max_text: int) -> str:
    parser = _HtmlText()
    parser.feed(_decode(name, data))
    parser.close()
    return re.sub(r"[ \t]+", " ", "".join(parser.out))


def _decode(name: str, data: bytes) -> str:
    """UTF-8 (with or without a BOM), else Latin-1; binary garbage refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", "replace")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    text = text.replace("\x00", "")
    sample = text[:65536]
    control = sum(1 for c in sample if (ord(c) < 32 and c not in "\t\n\r\f\v") or 0x7f <= ord(c) < 0xa0)
    if sample and control > len(sample) * 0.05:
        raise DocumentError(f"{name}: not a text file (binary content)")
    return text


def _text(name: str, data: bytes, max_text: int) -> str:
    return _decode(name, data)


_EXTRACTORS = {"pdf": _pdf, "docx": _docx, "odt": _odt, "html": _html, "text": _text}


if __name__ == "__main__":      # the isolated reader
    _worker_main()
