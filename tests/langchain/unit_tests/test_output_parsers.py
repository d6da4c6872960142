"""HeadroomMemoryOutputParser in LCEL pipes with LangChain's fake chat model."""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_headroom import HeadroomMemoryOutputParser

from headroom_memory import MemoryCategory

ANSWER = ('Python suits you well. <memory>[{"content": "Prefers Python", "category": "preference", '
          '"importance": 0.8}]</memory>')


def fake_model() -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=ANSWER)]))


def test_parser_returns_clean_text_and_exposes_the_items() -> None:
    parser = HeadroomMemoryOutputParser()
    assert (fake_model() | parser).invoke("hi") == "Python suits you well."
    assert [(m.content, m.category) for m in parser.last_memories] == [("Prefers Python", MemoryCategory.PREFERENCE)]


def test_parser_streams_without_any_part_of_the_block() -> None:
    parser = HeadroomMemoryOutputParser()
    pieces = list((fake_model() | parser).stream("hi"))
    assert len(pieces) > 1
    assert "".join(pieces) == "Python suits you well."
    assert not any("<" in piece or "memory" in piece for piece in pieces)
    assert parser.last_memories[0].importance == 0.8


async def test_parser_streams_async() -> None:
    parser = HeadroomMemoryOutputParser()
    pieces = [p async for p in (fake_model() | parser).astream("hi")]
    assert "".join(pieces) == "Python suits you well."


def test_parse_with_memories_is_stateless() -> None:
    parser = HeadroomMemoryOutputParser()
    clean, items = parser.parse_with_memories('A <memory>[{"content": "x"}, {"bad": 1}]</memory>')
    assert (clean, [i.content for i in items]) == ("A", ["x"])
    assert parser.last_memories == []
    assert "<memory>" in parser.get_format_instructions()
