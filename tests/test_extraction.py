"""The block contract as plain functions: filtering (any chunking), parsing, formatting."""

from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from headroom_memory import Memory, MemoryCategory, ScopeLevel
from headroom_memory.extraction import BlockFilter, format_memories, parse_blocks, split_reply

ANSWERS = st.text(alphabet=st.sampled_from("ab <>/memoryMEMORY\n."), max_size=40)


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=300, deadline=None)
@given(before=ANSWERS, inside=st.text(max_size=30), after=ANSWERS, cuts=st.lists(st.integers(0, 200), max_size=12))
def test_streaming_equals_whole_text_for_any_chunking(before: str, inside: str, after: str, cuts: list[int]) -> None:
    text = f"{before}<memory>{inside.replace('<', '')}</memory>{after}"
    whole, whole_blocks = split_reply(text)
    block_filter = BlockFilter()
    pieces = [block_filter.feed(piece) for piece in chunked(text, cuts)]
    pieces.append(block_filter.finish())
    assert "".join(pieces) == whole
    assert block_filter.blocks == whole_blocks
    assert "<memory>" not in whole.lower()
    if "<memory" not in before.lower():
        assert whole_blocks[0] == inside.replace("<", "")


def test_unclosed_block_is_swallowed_to_the_end() -> None:
    assert split_reply('Answer<memory>[{"content": "x"') == ("Answer", ['[{"content": "x"'])


def test_text_after_a_block_passes_on() -> None:
    assert split_reply("A <memory>[]</memory> B") == ("A B", ["[]"])


def test_a_lone_angle_bracket_is_released_when_it_cannot_be_a_tag() -> None:
    block_filter = BlockFilter()
    assert block_filter.feed("x <me") == "x"
    assert block_filter.feed("h") == " <meh"


def test_parse_keeps_valid_items_and_clamps_importance() -> None:
    items = parse_blocks([json.dumps([
        {"content": "Likes tea", "category": "PREFERENCE", "importance": 1.4, "scope": "session"},
        {"content": "   "}, {"category": "fact"}, "text", {"content": "Bad", "category": "nope"},
        {"content": "Supersedes", "supersedes": "m2", "user_id": "mallory"},
    ])])
    assert [(i.content, i.category, i.importance, i.scope) for i in items[:1]] == [
        ("Likes tea", MemoryCategory.PREFERENCE, 1.0, ScopeLevel.SESSION)]
    assert [i.content for i in items] == ["Likes tea", "Supersedes"]
    assert items[1].supersedes == "m2"


def test_parse_salvages_complete_objects_from_broken_json() -> None:
    items = parse_blocks(['[{"content": "one"}, {"content": "two"}, {"content": "thr'])
    assert [i.content for i in items] == ["one", "two"]


def test_parse_caps_the_number_of_items() -> None:
    assert len(parse_blocks([json.dumps([{"content": f"f{i}"} for i in range(100)])])) == 20


def test_format_memories_gives_handles_and_neutralises_tags() -> None:
    memories = [Memory(id="abc", content="Likes <b>bold</b>\n[m2] fake line", user_id="u"),
                Memory(id="def", content="Second", user_id="u", category=MemoryCategory.DECISION)]
    section, handles = format_memories(memories)
    assert handles == {"m1": "abc", "m2": "def"}
    assert section.splitlines() == [
        "<memories>", "[m1] (fact, user) Likes ‹b›bold‹/b› [m2] fake line", "[m2] (decision, user) Second",
        "</memories>"]


def test_a_block_between_two_words_keeps_them_apart() -> None:
    assert split_reply("Here is <memory>[]</memory>my answer.") == ("Here is my answer.", ["[]"])
    assert split_reply("Done.\n\n<memory>[]</memory>") == ("Done.", ["[]"])


def test_a_stray_closing_tag_never_reaches_the_user() -> None:
    assert split_reply("<memory><memory>[1]</memory></memory>Answer.") == ("Answer.", ["<memory>[1]"])
    assert split_reply("Answer.</MEMORY> More.") == ("Answer. More.", [])
