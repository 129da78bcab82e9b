"""Documents on contacts: text extracted from real PDF, DOCX, ODT, HTML and
text files; broken, hostile and garbage files refused with a clear error; the
text searched by word."""
from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import text

from posthouse.crm import document_text as docs
from posthouse.crm.documents import DocumentError, Documents, extract_text, extract_text_isolated
from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade

from . import docfiles

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT = "application/vnd.oasis.opendocument.text"


# -- extraction -----------------------------------------------------------------------
def test_pdf_text():
    data = docfiles.pdf(["Jane Doe (Resume)", "Senior Python engineer, Kubernetes"])
    text = extract_text("cv.pdf", PDF, data)
    assert "Jane Doe (Resume)" in text and "Kubernetes" in text


def test_pdf_found_by_its_bytes_when_the_type_says_nothing():
    data = docfiles.pdf(["Octet stream resume"])
    assert "Octet stream resume" in extract_text("attachment", "application/octet-stream", data)


def test_docx_paragraphs_tables_and_header():
    data = docfiles.docx(["Jane Doe", "Experience at Acme"], table=[["Skill", "Level"], ["Haskell", "expert"]],
                         header="jane@example.org")
    text = extract_text("cv.docx", DOCX, data)
    assert "Experience at Acme" in text
    assert "Haskell\texpert" in text
    assert "jane@example.org" in text
    # a DOCX sent as application/octet-stream is recognised by its parts
    assert "Haskell" in extract_text("x.bin", "application/octet-stream", data)


def test_odt_paragraphs_spans_headings_and_tables():
    data = docfiles.odt(["Jane Doe lives in Lyon", "Speaks Occitan"], heading="Curriculum",
                        table=[["Erlang", "ten years"]])
    text = extract_text("cv.odt", ODT, data)
    assert text.splitlines()[:3] == ["Curriculum", "Jane Doe lives in Lyon", "Speaks Occitan"]
    assert "Erlang" in text and "ten years" in text
    assert "Occitan" in extract_text("cv", "application/octet-stream", data)


def test_mislabelled_attachments_are_read_by_what_they_are():
    assert "Labelled PDF" in extract_text("cv.pdf", PDF, docfiles.docx(["Labelled PDF"]))
    assert "Labelled text" in extract_text("cv.txt", "text/plain", docfiles.odt(["Labelled text"]))
    assert "Labelled DOCX" in extract_text("cv.docx", DOCX, docfiles.pdf(["Labelled DOCX"]))
    # a text that merely mentions %PDF- further on stays text
    assert extract_text("n.txt", "text/plain", b"notes: a file starts with %PDF-1.4") == "notes: a file starts with %PDF-1.4"


def test_plain_text_charsets_and_nuls():
    assert extract_text("a.txt", "text/plain", "Zoë Müller\n".encode()) == "Zoë Müller"
    assert extract_text("a.txt", "text/plain", "Zoë Müller".encode("latin-1")) == "Zoë Müller"
    assert extract_text("a.txt", "text/plain; charset=utf-8", b"\xef\xbb\xbfBOM first") == "BOM first"
    assert extract_text("a.txt", "text/plain", b"nul\x00 inside") == "nul inside"
    assert extract_text("notes.md", "", b"# by extension") == "# by extension"


def test_html_without_tags_scripts_or_styles():
    html = (b"<html><head><title>t</title><style>p{color:red}</style></head><body>"
            b"<h1>Jane&nbsp;Doe</h1><p>Knows <b>COBOL</b> &amp; Fortran</p>"
            b"<script>alert('x')</script></body></html>")
    text = extract_text("cv.html", "text/html", html)
    assert "Jane\xa0Doe" in text and "Knows COBOL & Fortran" in text
    assert "alert" not in text and "color" not in text and "<" not in text


@pytest.mark.parametrize("make, ctype, name", [
    (lambda: docfiles.pdf(["truncated"]), PDF, "cv.pdf"),
    (lambda: docfiles.docx(["truncated"]), DOCX, "cv.docx"),
    (lambda: docfiles.odt(["truncated"]), ODT, "cv.odt"),
])
def test_truncated_files_are_refused(make, ctype, name):
    data = make()
    for cut in (len(data) // 2, 40):
        with pytest.raises(DocumentError) as e:
            extract_text(name, ctype, data[:cut])
        assert name in str(e.value)


@pytest.mark.parametrize("ctype, name", [(PDF, "cv.pdf"), (DOCX, "cv.docx"), (ODT, "cv.odt"),
                                         ("text/plain", "cv.txt")])
def test_garbage_is_refused(ctype, name):
    garbage = bytes((i * 7919 + 13) % 256 for i in range(4096))
    with pytest.raises(DocumentError):
        extract_text(name, ctype, garbage)


def test_a_zip_that_is_neither_docx_nor_odt():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(DocumentError, match="no word/document.xml"):
        extract_text("cv.docx", DOCX, buf.getvalue())
    with pytest.raises(DocumentError, match="unsupported"):
        extract_text("cv.zip", "application/zip", buf.getvalue())


def test_encrypted_pdf_is_refused_clearly():
    with pytest.raises(DocumentError, match="encrypted with a password"):
        extract_text("cv.pdf", PDF, docfiles.encrypted_pdf(["hidden words"]))


def test_pdf_encrypted_with_an_empty_user_password_opens():
    from pypdf import PdfReader, PdfWriter
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(docfiles.pdf(["printable only"]))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    assert "printable only" in extract_text("cv.pdf", PDF, buf.getvalue())


def test_unsupported_types_and_empty_files():
    with pytest.raises(DocumentError, match="unsupported document type image/png"):
        extract_text("me.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(DocumentError, match="empty"):
        extract_text("cv.pdf", PDF, b"")


def test_size_limit_before_parsing():
    with pytest.raises(DocumentError, match="over the limit"):
        extract_text("big.txt", "text/plain", b"a" * 1001, max_size=1000)
    assert len(extract_text("big.txt", "text/plain", b"word " * 1000, max_text=100)) == 100


def test_zip_bomb_refused_by_declared_size(monkeypatch):
    monkeypatch.setattr(docs, "MAX_UNZIPPED", 1024 * 1024)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"\x00" * (2 * 1024 * 1024))
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(DocumentError, match="unpacks to"):
        extract_text("bomb.docx", DOCX, buf.getvalue())


def test_pdf_stream_bomb_refused(monkeypatch):
    """A content stream that inflates past the limit is refused, not decoded."""
    monkeypatch.setattr(docs, "MAX_PDF_STREAM", 1024 * 1024)
    assert "bomb" in extract_text("small.pdf", PDF, docfiles.pdf(["bomb"], deflate_padding=1000))
    data = docfiles.pdf(["bomb"], deflate_padding=4 * 1024 * 1024)
    assert len(data) < 100_000
    with pytest.raises(DocumentError):
        extract_text("bomb.pdf", PDF, data)


# -- the store ------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """On a new SQLite file, and on the session's private PostgreSQL (the
    `postgres_url` fixture)."""
    if request.param == "sqlite":
        engine = make_engine(None, str(tmp_path))
    else:
        engine = make_engine(request.getfixturevalue("postgres_url"), str(tmp_path))
    upgrade(engine)
    if request.param != "sqlite":
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE documents RESTART IDENTITY"))
    yield Documents(engine, isolated=False)     # (the isolated reader: its own tests below)
    engine.dispose()


def test_add_get_data_list_delete(store):
    pdf = docfiles.pdf(["Resume of Jane Doe"])
    doc = store.add(7, "cv.pdf", PDF, pdf)
    assert doc["contact_id"] == 7 and doc["filename"] == "cv.pdf" and doc["size"] == len(pdf)
    assert doc["text_excerpt"].startswith("Resume of Jane Doe") and doc["created_at"]
    assert store.get(doc["id"]) == doc
    assert store.data(doc["id"]) == pdf
    other = store.add(8, "notes.txt", "text/plain", b"notes")
    assert [d["id"] for d in store.list(7)] == [doc["id"]]
    assert [d["id"] for d in store.list(8)] == [other["id"]]
    assert store.delete(doc["id"]) is True
    assert store.get(doc["id"]) is None and store.data(doc["id"]) is None
    assert store.delete(doc["id"]) is False
    assert store.list(7) == []


def test_a_broken_document_is_not_stored(store):
    with pytest.raises(DocumentError):
        store.add(1, "cv.pdf", PDF, b"%PDF-1.4 nothing else")
    assert store.list(1) == []


def test_search_finds_a_word_from_each_kind(store):
    store.add(1, "a.pdf", PDF, docfiles.pdf(["Expert in Zanzibarian tax law"]))
    store.add(2, "b.docx", DOCX, docfiles.docx(["Intro"], table=[["Skill", "Quetzalcoatl wrangling"]]))
    store.add(3, "c.odt", ODT, docfiles.odt(["Fluent in Volapük and Esperanto"]))
    store.add(4, "d.txt", "text/plain", "Plays the BANDONEÓN on weekends".encode())
    store.add(5, "e.html", "text/html", b"<p>Certified <b>Kubernaut</b></p>")
    assert [(h["contact_id"], h["filename"]) for h in store.search("zanzibarian")] == [(1, "a.pdf")]
    assert [h["contact_id"] for h in store.search("QUETZALCOATL")] == [2]
    assert [h["contact_id"] for h in store.search("volapük")] == [3]
    assert [h["contact_id"] for h in store.search("Bandoneón")] == [4]     # non-ASCII case folding
    assert [h["contact_id"] for h in store.search("kubernaut")] == [5]
    hit = store.search("zanzibarian")[0]
    assert "Zanzibarian tax law" in hit["snippet"]
    # whole words: a part of a word is no match; several words must all be there
    assert store.search("zanzibar") == []
    assert [h["contact_id"] for h in store.search("tax zanzibarian")] == [1]
    assert store.search("tax esperanto") == []
    assert [h["contact_id"] for h in store.search("esperanto", contact_id=3)] == [3]
    assert store.search("esperanto", contact_id=1) == []
    # LIKE's wildcards are only characters
    assert store.search("%") == [] and store.search("_") == []


def test_snippet_is_around_the_match(store):
    text = ("filler " * 200) + "the needle word " + ("padding " * 200)
    store.add(1, "long.txt", "text/plain", text.encode())
    snippet = store.search("needle")[0]["snippet"]
    assert "needle" in snippet and len(snippet) < 250
    assert snippet.startswith("…") and snippet.endswith("…")


def test_same_file_on_the_same_contact_is_one_document(store):
    first = store.add(1, "cv.txt", "text/plain", b"same bytes")
    assert store.add(1, "cv-again.txt", "text/plain", b"same bytes") == first
    assert store.add(2, "cv.txt", "text/plain", b"same bytes")["id"] != first["id"]


# -- the isolated reader: a child process under time and memory limits -------------------
def test_isolated_reader_extracts_and_refuses_like_the_inline_one(tmp_path):
    engine = make_engine(None, str(tmp_path))
    upgrade(engine)
    store = Documents(engine)                       # isolated by default
    doc = store.add(1, "cv.pdf", PDF, docfiles.pdf(["Isolated Quokka"]))
    assert "Isolated Quokka" in doc["text_excerpt"]
    with pytest.raises(DocumentError, match="encrypted with a password"):
        store.add(1, "x.pdf", PDF, docfiles.encrypted_pdf(["hidden"]))
    with pytest.raises(DocumentError, match="over the limit"):
        Documents(engine, max_size=10).add(1, "big.txt", "text/plain", b"x" * 11)
    engine.dispose()


def test_isolated_reader_time_limit():
    with pytest.raises(DocumentError, match="took longer than"):
        extract_text_isolated("cv.pdf", PDF, docfiles.pdf(["slow"]), timeout=0.001)


def test_isolated_reader_memory_limit():
    """A reader that runs out of memory is a refused document, not a dead server."""
    with pytest.raises(DocumentError):
        extract_text_isolated("cv.docx", DOCX, docfiles.docx(["big"]), memory=32 * 1024 * 1024)
