"""Long answers are split under Discord's 2,000 characters without breaking code fences."""

from __future__ import annotations

from botcore.text import DISCORD_MESSAGE_LIMIT, split_message


def test_short_text_is_one_message():
    assert split_message("hello") == ["hello"]
    assert split_message("   ") == []


def test_long_prose_splits_on_sentences_under_the_limit():
    text = " ".join(f"Sentence number {i} is here." for i in range(400))
    chunks = split_message(text)
    assert len(chunks) > 1
    assert all(len(chunk) <= DISCORD_MESSAGE_LIMIT for chunk in chunks)
    assert all(chunk.endswith(".") for chunk in chunks)
    assert " ".join(chunks) == text


def test_lines_are_preferred_over_words():
    text = "\n".join("word " * 30 for _ in range(30))
    for chunk in split_message(text):
        assert len(chunk) <= DISCORD_MESSAGE_LIMIT
        assert chunk.endswith("word")


def test_code_fences_are_closed_and_reopened():
    code = "\n".join(f"print({i})  # a line of code" for i in range(200))
    text = f"Here is the code:\n```python\n{code}\n```\nThat was it."
    chunks = split_message(text)
    assert len(chunks) >= 3
    for chunk in chunks:
        assert len(chunk) <= DISCORD_MESSAGE_LIMIT
        assert chunk.count("```") % 2 == 0, chunk[:80]
    assert chunks[1].startswith("```python\n")
    rebuilt = "".join(chunk.removesuffix("\n```").removeprefix("```python\n") for chunk in chunks[1:-1])
    assert "print(100)" in rebuilt


def test_a_word_longer_than_the_limit_is_cut_hard():
    chunks = split_message("x" * 4500)
    assert [len(chunk) for chunk in chunks] == [1996, 1996, 508]
