"""Token-level matching (MaxSim over word-piece states): the score, the cache and its place in ranking."""

from __future__ import annotations

import numpy as np

import rag
from rag.model import FakeEmbedder
from rag.query import retrieve, token_match
from rag.store import IndexReader
from rag.types import Chunk


def _unit(rows):
    m = np.asarray(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_maxsim_is_the_mean_of_each_question_pieces_best_match():
    q = _unit([[1, 0], [0, 1]])
    p = _unit([[1, 0], [1, 1]])
    # piece 1 matches [1, 0] exactly; piece 2's best is [1, 1] at cos 0.707
    assert abs(token_match.maxsim(q, p) - (1 + 2**-0.5) / 2) < 1e-6
    assert token_match.maxsim(q, np.zeros((0, 2), np.float32)) == 0.0


def test_passages_sharing_the_question_words_score_higher():
    matcher = token_match.TokenMatcher(FakeEmbedder())
    scores = matcher("confiance des pure-players", ["la confiance dont bénéficient les pure-players", "le prix du transport"])
    assert scores[0] > scores[1]
    assert scores.dtype == np.float32 and scores.shape == (2,)


class CountingFake(FakeEmbedder):
    def __init__(self):
        super().__init__()
        self.passages_encoded = 0

    def embed_tokens(self, texts, query=False, layer=8):
        if not query:
            self.passages_encoded += len(texts)
        return super().embed_tokens(texts, query=query, layer=layer)


def test_passage_states_are_computed_once_and_the_cache_is_bounded():
    fake = CountingFake()
    matcher = token_match.TokenMatcher(fake, cache_chunks=2)
    first = matcher("question", ["alpha beta", "gamma delta"])
    again = matcher("question", ["alpha beta", "gamma delta"])
    assert fake.passages_encoded == 2
    np.testing.assert_allclose(first, again)
    matcher("question", ["epsilon zeta"])  # evicts the oldest
    matcher("question", ["alpha beta"])
    assert fake.passages_encoded == 4


def test_stored_states_are_read_once_then_kept_as_float32_within_the_byte_bound():
    fake = CountingFake()
    texts = ["alpha beta gamma", "delta epsilon", "zeta eta theta iota"]
    chunks = [Chunk(id=i, source="s.txt", start=0, end=len(t), text=t, title="s") for i, t in enumerate(texts)]
    stored_rows = {i: st.vectors.astype(np.float16) for i, st in enumerate(fake.embed_tokens(texts))}
    fake.passages_encoded = 0
    reads = []

    def stored(ids):
        reads.extend(ids)
        return [stored_rows.get(i) for i in ids]

    matcher = token_match.TokenMatcher(fake, cache_bytes=sum(r.size * 4 for r in stored_rows.values()))
    _, q = fake.embed_query_tokens("alpha delta")
    first = matcher.scorer("alpha delta", q, stored)(chunks)
    again = matcher.scorer("alpha delta", q, stored)(chunks)
    assert reads == [0, 1, 2] and fake.passages_encoded == 0  # read once, never computed
    np.testing.assert_array_equal(first, again)
    expected = [token_match.maxsim(token_match.question_pieces("alpha delta", q), r.astype(np.float32))
                for r in stored_rows.values()]
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    assert all(v.dtype == np.float32 for v in matcher._cache.values())
    small = token_match.TokenMatcher(fake, cache_bytes=stored_rows[0].size * 4)
    small.scorer("alpha delta", q, stored)(chunks)
    assert len(small._cache) == 1 and small._held <= stored_rows[2].size * 4  # only the newest is kept


def test_an_embedder_without_token_states_ranks_without_them():
    class PooledOnly:
        pass

    assert token_match.matcher_for(PooledOnly()) is None

    class NoTokens(FakeEmbedder):
        embed_tokens = None

    vec, scorer = token_match.embed_question(NoTokens(), "la confiance")
    assert scorer is None and vec.shape == (64,)
    fake = FakeEmbedder()
    assert token_match.matcher_for(fake) is token_match.matcher_for(fake)


def test_rank_reorders_only_its_pool_and_agrees_across_k(fake_settings, fake):
    rag.build_index(settings=fake_settings)
    reader = IndexReader.open(fake_settings.index_dir)
    question = "Pourquoi les Français font confiance aux pure-players ?"
    vec = fake.embed_query(question)
    scorer = token_match.matcher_for(fake).scorer(question, fake.embed_tokens([question], query=True)[0])
    plain = retrieve.rank(reader, question, vec, 40)
    ranked = retrieve.rank(reader, question, vec, 40, scorer)
    pool = token_match.RERANK_POOL
    # the same candidates enter the pool; only their order changes, and every one was matched
    assert {s.chunk.id for s in ranked[:pool]} == {s.chunk.id for s in plain[:pool]}
    assert all(s.token_match > 0 for s in ranked[:pool])
    assert all(s.token_match == 0 for s in ranked[pool:])
    assert [s.chunk.id for s in ranked[pool:]] == [s.chunk.id for s in plain[pool:]]
    before = {s.chunk.id: s.fused for s in plain}
    for s in ranked[:pool]:
        assert abs(s.fused - (before[s.chunk.id] + token_match.TOKEN_WEIGHT * s.token_match)) < 1e-6
    fused = [s.fused for s in ranked[:pool]]
    assert fused == sorted(fused, reverse=True)
    top3 = retrieve.rank(reader, question, vec, 3, scorer)
    assert [s.chunk.id for s in top3] == [s.chunk.id for s in ranked[:3]]
    reader.close()


def test_real_token_states_leave_out_the_prompt_special_tokens_and_punctuation(real_embedder):
    [states] = real_embedder.embed_tokens(["why trust pure players?"], query=True)
    q = states.vectors
    assert [("why trust pure players?")[a:b].strip() for a, b in states.spans][0] == "why"
    assert q.shape == (real_embedder.count_tokens("why trust pure players"), real_embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    # padding in a batch does not change a text's states
    alone = real_embedder.embed_tokens(["la confiance"])[0].vectors
    batched = real_embedder.embed_tokens(["la confiance", "un texte nettement plus long que le premier"])[0].vectors
    np.testing.assert_allclose(alone, batched, atol=1e-4)


def test_real_token_match_links_an_english_word_to_its_french_translation(real_embedder):
    matcher = token_match.TokenMatcher(real_embedder)
    scores = matcher("trust", ["la confiance des clients", "le prix des livraisons"])
    assert scores[0] > scores[1]


def test_one_forward_pass_gives_the_query_vector_and_its_token_states(real_embedder):
    question = "why do French trust pure-players?"
    vector, states = real_embedder.embed_query_tokens(question)
    np.testing.assert_allclose(vector, real_embedder.embed_query(question), atol=1e-5)
    np.testing.assert_allclose(states.vectors, real_embedder.embed_tokens([question], query=True)[0].vectors, atol=1e-5)


def test_the_decision_counts_how_well_the_question_words_matched_the_best_passage():
    from dataclasses import replace

    from rag.query import decide
    from rag.query.retrieve import Scored
    from rag.types import Chunk

    text = "Une phrase assez longue pour compter ici."
    chunk = Chunk(0, "0.txt", text, 0, len(text), "", ((0, len(text)),))
    background = [Scored(chunk, 0.80, 0.80, (0.80,), 0.0, i + 2, None, 0.80) for i in range(10)]
    ranked = [Scored(chunk, 0.83, 0.83, (0.83,), 0.0, 1, None, 0.83), *background]
    question = "Where is it?"
    _, unmatched_conf, unmatched_reason = decide.decide(question, ranked)  # no token states: signal left out
    assert "matched" not in unmatched_reason
    level = decide.TOKEN_LEVEL["en"]
    strong = decide.decide(question, [replace(ranked[0], token_match=level + 0.1), *background])
    weak = decide.decide(question, [replace(ranked[0], token_match=level - 0.1), *background])
    at_level = decide.decide(question, [replace(ranked[0], token_match=level), *background])
    assert weak[1] < at_level[1] < strong[1] and weak[1] < unmatched_conf
    assert f"its words matched {level - 0.1:.3f}" in weak[2]
