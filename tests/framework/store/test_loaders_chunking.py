"""Chunking long text and loading .txt, .md and BEIR corpus files."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from edgeroute.framework.errors import InputError
from edgeroute.framework.store.chunking import approx_tokens, chunk_text
from edgeroute.framework.store.loaders import LoadProblem, load_beir_corpus, load_paths, load_text_file

LONG = "\n\n".join(
    " ".join(f"Paragraph {p} sentence {s} says something about topic {p * 10 + s}." for s in range(12))
    for p in range(6)
)


class TestChunking:
    def test_short_text_is_one_chunk_and_blank_is_none(self) -> None:
        (c,) = chunk_text("Just one sentence.")
        assert (c.text, c.index, c.start, c.end) == ("Just one sentence.", 0, 0, 18)
        assert chunk_text("  \n\n  ") == []

    def test_chunks_are_exact_slices_within_budget(self) -> None:
        chunks = chunk_text(LONG, max_tokens=80, overlap_tokens=20)
        assert len(chunks) > 5
        for i, c in enumerate(chunks):
            assert c.index == i
            assert LONG[c.start : c.end] == c.text
            assert approx_tokens(c.text) <= 80 + 2  # estimate of a slice vs. the sum of its pieces
        assert chunks[0].start == 0 and chunks[-1].end == len(LONG)

    def test_chunks_end_on_sentence_boundaries_and_overlap(self) -> None:
        chunks = chunk_text(LONG, max_tokens=80, overlap_tokens=20)
        for a, b in itertools.pairwise(chunks):
            assert a.text.endswith(".")
            assert b.start < a.end or LONG[a.end : b.start].strip() == ""  # overlap, or a paragraph break
        overlapping = [b for a, b in itertools.pairwise(chunks) if b.start < a.end]
        assert overlapping, "consecutive chunks inside a paragraph share sentences"
        covered: set[int] = set()
        for c in chunks:
            covered.update(range(c.start, c.end))
        assert all(i in covered for i, ch in enumerate(LONG) if not ch.isspace())

    def test_prefers_paragraph_breaks(self) -> None:
        text = ("Alpha sentence here. " * 6).strip() + "\n\n" + ("Beta sentence here. " * 6).strip()
        chunks = chunk_text(text, max_tokens=40, overlap_tokens=0)
        assert chunks[0].text.startswith("Alpha") and "Beta" not in chunks[0].text

    def test_unspaced_cjk_is_cut_hard(self) -> None:
        text = "中" * 500
        chunks = chunk_text(text, max_tokens=64, overlap_tokens=8)
        assert "".join(c.text for c in chunks) == text
        assert all(c.tokens <= 64 for c in chunks)

    def test_approx_tokens(self) -> None:
        assert approx_tokens("Hello, world!") == 2 + 1 + 2 + 1  # words of 5 chars: 2 each
        assert approx_tokens("你好") == 2
        assert approx_tokens("") == 0

    @pytest.mark.parametrize(("max_tokens", "overlap"), [(8, 0), (100, 50), (100, -1)])
    def test_bad_sizes(self, max_tokens: int, overlap: int) -> None:
        with pytest.raises(InputError):
            chunk_text("text", max_tokens=max_tokens, overlap_tokens=overlap)

    def test_not_a_string(self) -> None:
        with pytest.raises(InputError, match="string"):
            chunk_text(b"bytes")  # type: ignore[arg-type,unused-ignore]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("A short plain note about tea.", encoding="utf-8")
    (root / "sub" / "b.md").write_text("# Brewing guide\n\n" + LONG, encoding="utf-8")
    (root / "empty.txt").write_text("   \n", encoding="utf-8")
    (root / ".hidden.md").write_text("secret", encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG")
    return root


class TestLoaders:
    def test_directory_walk_with_stable_ids_and_offsets(self, tree: Path) -> None:
        docs = list(load_paths([tree], max_tokens=80, overlap_tokens=16, media=False))
        ids = [d.id for d in docs]
        assert ids[0] == "a.txt#0"
        assert ids[1:4] == ["sub/b.md#0", "sub/b.md#1", "sub/b.md#2"]
        assert all(not i.startswith((".hidden", "empty", "image")) for i in ids)
        assert ids == [d.id for d in load_paths([tree], max_tokens=80, overlap_tokens=16, media=False)]
        source = (tree / "sub" / "b.md").read_text(encoding="utf-8")
        for d in docs[1:]:
            m = d.metadata
            assert m["source"] == "sub/b.md" and d.id == f"sub/b.md#{m['chunk']}"
            assert isinstance(m["start"], int) and isinstance(m["end"], int)
            assert source[m["start"] : m["end"]] == d.text
            assert d.title == "Brewing guide" == m["title"]
        assert docs[0].title is None

    def test_single_file_ids_are_relative_to_its_directory(self, tree: Path) -> None:
        (doc,) = load_paths([tree / "a.txt"])
        assert doc.id == "a.txt#0" and doc.text == "A short plain note about tea."

    def test_bad_inputs(self, tree: Path, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="does not exist"):
            list(load_paths([tmp_path / "missing"]))
        with pytest.raises(InputError, match="is empty"):
            list(load_paths([tree / "empty.txt"]))
        with pytest.raises(InputError, match="not PNG or JPEG"):
            list(load_paths([tree / "image.png"]))  # four bytes of a PNG header are not an image
        (tree / "notes.docx").write_bytes(b"PK")
        with pytest.raises(InputError, match=r"\.txt or \.md file; supported: .*\.pdf"):
            list(load_paths([tree / "notes.docx"]))
        latin1 = tmp_path / "latin1.txt"
        latin1.write_bytes("café".encode("latin-1"))
        with pytest.raises(InputError, match="not UTF-8"):
            load_text_file(latin1)

    def test_beir_corpus(self, tmp_path: Path) -> None:
        corpus = tmp_path / "corpus.jsonl"
        rows = [
            {"_id": "10", "title": "Tea", "text": "Green tea contains catechins."},
            {"_id": "11", "title": "", "text": "Coffee contains caffeine."},
            {"_id": "12", "title": "", "text": ""},
            {"_id": "13", "title": "Only a title", "text": ""},
            {"_id": "14", "title": "Title, text null", "text": None},
            {"_id": "15", "title": "Title, no text field"},
        ]
        corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
        docs = list(load_paths([corpus]))
        assert [(d.id, d.title, d.text) for d in docs] == [
            ("10", "Tea", "Green tea contains catechins."),
            ("11", None, "Coffee contains caffeine."),
            ("13", "Only a title", "Only a title"),  # indexed from its title, not skipped
            ("14", "Title, text null", "Title, text null"),
            ("15", "Title, no text field", "Title, no text field"),
        ]
        assert docs[0].metadata == {"source": "corpus.jsonl", "title": "Tea"}

    def test_beir_corpus_inside_a_directory(self, tmp_path: Path) -> None:
        (tmp_path / "set").mkdir()
        (tmp_path / "set" / "corpus.jsonl").write_text('{"_id": "1", "text": "x y z"}\n', encoding="utf-8")
        (tmp_path / "set" / "queries.jsonl").write_text('{"_id": "q", "text": "x"}\n', encoding="utf-8")
        assert [d.id for d in load_paths([tmp_path / "set"])] == ["1"]

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("{not json", "not valid JSON"),
            ('{"text": "no id"}', '"_id"'),
            ('{"_id": 1, "text": 5}', "strings"),
        ],
    )
    def test_bad_beir_lines_name_the_line(self, tmp_path: Path, line: str, message: str) -> None:
        corpus = tmp_path / "corpus.jsonl"
        corpus.write_text('{"_id": "ok", "text": "fine"}\n' + line + "\n", encoding="utf-8")
        with pytest.raises(InputError, match=message) as exc:
            list(load_beir_corpus(corpus))
        assert "corpus.jsonl:2" in str(exc.value)

    def test_duplicate_beir_ids(self, tmp_path: Path) -> None:
        corpus = tmp_path / "corpus.jsonl"
        corpus.write_text('{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n', encoding="utf-8")
        with pytest.raises(InputError, match="duplicate"):
            list(load_beir_corpus(corpus))


JPEG = next(iter(sorted(Path("/work/shared/data/flickr8k_1k/images").glob("*.jpg")))).read_bytes()
PDF = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n"


class TestMediaAndProblems:
    def test_images_and_pdfs_load_as_multimodal_documents(self, tmp_path: Path) -> None:
        root = tmp_path / "docs"
        (root / "img").mkdir(parents=True)
        (root / "img" / "dog.jpg").write_bytes(JPEG)
        (root / "spec.pdf").write_bytes(PDF)
        (root / "note.txt").write_text("A note.", encoding="utf-8")
        docs = {d.id: d for d in load_paths([root])}
        assert sorted(docs) == ["img/dog.jpg#0", "note.txt#0", "spec.pdf#0"]
        dog = docs["img/dog.jpg#0"]
        assert dog.is_multimodal and dog.text == "" and dog.parts[0].mime_type == "image/jpeg"
        assert dog.parts[0].data == JPEG and dog.metadata["source"] == "img/dog.jpg"
        assert docs["spec.pdf#0"].parts[0].mime_type == "application/pdf"
        assert [d.id for d in load_paths([root], media=False)] == ["note.txt#0"]

    def test_every_bad_file_is_reported_and_the_good_ones_still_load(self, tmp_path: Path) -> None:
        root = tmp_path / "mixed"
        root.mkdir()
        (root / "good.txt").write_text("Fine text.", encoding="utf-8")
        (root / "latin1.txt").write_bytes("café".encode("latin-1"))
        (root / "fake.png").write_bytes(b"not an image at all")
        (root / "long.pdf").write_bytes(b"%PDF-1.4\n" + b"<< /Type /Page >>\n" * 9)
        (root / "empty.md").write_text("  ", encoding="utf-8")
        (root / "corpus.jsonl").write_text(
            '{"_id": "c1", "text": "ok"}\n{broken\n{"_id": "c1", "text": "dup"}\n', encoding="utf-8"
        )
        problems: list[LoadProblem] = []
        docs = list(load_paths([root, tmp_path / "missing.txt"], problems=problems))
        assert sorted(d.id for d in docs) == ["c1", "good.txt#0"]
        errors = {Path(p.path.split(":")[0]).name: p.reason for p in problems if p.kind == "error"}
        assert set(errors) == {"latin1.txt", "fake.png", "long.pdf", "corpus.jsonl", "missing.txt"}
        assert sum(1 for p in problems if p.path.endswith(("corpus.jsonl:2", "corpus.jsonl:3"))) == 2
        assert [p.path for p in problems if p.kind == "empty"] == [str(root / "empty.md")]
        assert "not UTF-8" in errors["latin1.txt"] and "pages" in errors["long.pdf"]
        with pytest.raises(InputError, match=r"corpus.jsonl:2"):  # without a list: the first one raises
            list(load_paths([root]))


def test_corpus_records_may_carry_a_sensitivity(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        '{"_id": "a", "text": "x", "sensitivity": "confidential"}\n{"_id": "b", "text": "y"}\n'
        '{"_id": "c", "text": "z", "sensitivity": "secret"}\n',
        encoding="utf-8",
    )
    problems: list[LoadProblem] = []
    docs = list(load_beir_corpus(corpus, problems=problems))
    assert [(d.id, d.sensitivity) for d in docs] == [("a", "confidential"), ("b", "internal")]
    assert "sensitivity 'secret' is unknown" in problems[0].reason
