import pytest

from rag.documents.chunk import MIN_CHUNK_TOKENS, chunk_document, split_sentences
from rag.documents.clean import boilerplate_flags, sections, split_lines
from rag.documents.discover import discover, read_seed
from tests.conftest import SEEDS


def _documents():
    seeds, _ = discover(SEEDS, (".txt", ".md"))
    return [read_seed(s, 10_000_000)[0] for s in seeds]


def test_there_are_five_seed_documents():
    docs = _documents()
    assert len(docs) == 5 and all(d is not None for d in docs)


@pytest.mark.parametrize("clean", [True, False])
def test_every_chunk_has_exact_offsets(fake, clean):
    for doc in _documents():
        chunks = chunk_document(
            doc, chunk_tokens=120, overlap_tokens=20, count_tokens=fake.count_tokens, first_id=7, clean=clean
        )
        assert chunks, doc.source
        assert [c.id for c in chunks] == list(range(7, 7 + len(chunks)))
        for c in chunks:
            assert doc.text[c.start : c.end] == c.text
            assert c.source == doc.source


@pytest.mark.model
def test_no_chunk_exceeds_the_model_limit_and_offsets_hold(real_embedder):
    from rag.settings import Settings

    s = Settings()
    for doc in _documents():
        chunks = chunk_document(
            doc,
            chunk_tokens=s.chunk_tokens,
            overlap_tokens=s.chunk_overlap_tokens,
            count_tokens=real_embedder.count_tokens,
            first_id=0,
        )
        for c in chunks:
            assert doc.text[c.start : c.end] == c.text
            # a heading joined to its paragraph may add up to MIN_CHUNK_TOKENS; the model still reads it all
            assert real_embedder.count_tokens(c.text) <= s.chunk_tokens + MIN_CHUNK_TOKENS <= real_embedder.content_tokens


def test_boilerplate_lines_are_flagged_and_prose_is_kept():
    text = (
        "Twitter Facebook Linkedin Flipboard Email\n"
        "Le service client est impressionnant de rapidité et d'efficacité.\n"
        "11:01 Publié dans Entretiens | Lien permanent | Commentaires (2) | Facebook | | Pin it!\n"
        "En poursuivant votre navigation sur ce site, vous acceptez l'utilisation de cookies.\n"
        "Laisser un commentaire\n"
        "IMAG0401.jpg\n"
    )
    flags = boilerplate_flags(split_lines(text))
    assert flags == [True, False, True, True, True, True]


def test_multi_post_pages_are_split_into_titled_sections():
    text = (
        "09/05/2012\n\nUn papier pour le Confianciologue !\n\nPremier billet, assez long pour compter.\n\n"
        "10:00 Publié dans Actualité | Lien permanent | Commentaires (0)\n\n"
        "31 ans plus tard !\n\nDeuxième billet, lui aussi assez long.\n"
    )
    secs = sections(text, "Blog")
    assert [s.title for s in secs] == ["Un papier pour le Confianciologue !", "31 ans plus tard !"]
    assert "Premier billet" in text[secs[0].start : secs[0].end]
    assert "Deuxième billet" in text[secs[1].start : secs[1].end]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("pigeon.jpgJe ne sais pas. Deux.", ["pigeon.jpg", "Je ne sais pas.", "Deux."]),
        ("SophieCallies.jpgMarketingIsDead : la suite", ["SophieCallies.jpg", "MarketingIsDead : la suite"]),
        ("Voir le fichier image.png, puis la suite.", ["Voir le fichier image.png, puis la suite."]),
    ],
)
def test_an_image_name_glued_to_the_text_ends_a_sentence(text, expected):
    assert [text[a:b] for a, b in split_sentences(text)] == expected
