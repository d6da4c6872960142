"""Writes the notebooks in this folder from their cell sources (run it after editing).

    python notebooks/build_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

MODEL_SETUP = '''import os
from headroom_memory.testing import ScriptedModel, openai_server

if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
    BASE_URL, API_KEY = os.environ.get("OPENAI_BASE_URL"), os.environ.get("OPENAI_API_KEY", "ollama")
    MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
    print(f"Using the real endpoint {BASE_URL or 'api.openai.com'} with model {MODEL}")
    server = None
else:
    scripted = ScriptedModel([
        'Python is a great fit for backends.\\n<memory>[{"content": "Prefers Python for backend work", '
        '"category": "preference", "importance": 0.8, "scope": "user"}]</memory>',
        "Since you prefer Python, FastAPI would be a natural choice.\\n<memory>[]</memory>",
    ])
    server = openai_server(scripted)
    BASE_URL, _recorded = server.__enter__()
    API_KEY, MODEL = "scripted", "scripted"
    print(f"No OPENAI_API_KEY / OPENAI_BASE_URL set: using a scripted OpenAI-compatible server at {BASE_URL}")'''


def engine_tour() -> list:
    return [
        new_markdown_cell("# headroom-memory: engine tour\n\nScopes, supersession and time, hybrid search, "
                          "and stats, on a temporary database with the local all-MiniLM-L6-v2 model "
                          "(offline). The sync facade `SyncMemory` works inside Jupyter's running loop."),
        new_code_cell('import tempfile, time\nfrom pathlib import Path\n'
                      'from headroom_memory import MemoryConfig, MemoryFilter, SyncMemory\n\n'
                      'db = Path(tempfile.mkdtemp()) / "tour.db"\n'
                      'memory = SyncMemory(MemoryConfig(db_path=db))\nprint(db)'),
        new_markdown_cell("## Scopes: what each reader sees"),
        new_code_cell('memory.add("Prefers Python for backend work", user_id="alice", category="preference")\n'
                      'memory.add("Migrating billing to Kubernetes", user_id="alice", session_id="monday", '
                      'category="context")\n'
                      'memory.add("Reviews must flag missing type hints", user_id="alice", session_id="monday", '
                      'agent_id="reviewer", category="decision")\n'
                      'memory.add("Prefers Go", user_id="bob", category="preference")\n'
                      'for reader in [("alice",), ("alice", "monday"), ("alice", "monday", "reviewer"), '
                      '("alice", "tuesday"), ("bob",)]:\n'
                      '    print(" / ".join(reader).ljust(26), [m.content for m in memory.visible(*reader)])'),
        new_markdown_cell("## A fact that changes: supersession, history and `as_of`"),
        new_code_cell('v1 = memory.add("Lives in Lyon", user_id="alice")\ntime.sleep(0.05)\n'
                      'v2 = memory.supersede(v1.id, "Lives in Paris")\ntime.sleep(0.05)\n'
                      'v3 = memory.supersede(v2.id, "Lives in Berlin")\n'
                      'chain = memory.get_history(v1.id)\n'
                      'for m in chain:\n    print(m.content.ljust(16), m.valid_from.time(), "->", '
                      'm.valid_until.time() if m.valid_until else "now")\n'
                      'print("as of v2:", [m.content for m in memory.query(MemoryFilter(user_id="alice", '
                      'as_of=v2.valid_from)) if m.content.startswith("Lives")])'),
        new_code_cell('import matplotlib\nmatplotlib.use("Agg")\nimport matplotlib.pyplot as plt\n'
                      'from datetime import datetime, timezone\n\n'
                      'now = datetime.now(timezone.utc)\nfig, ax = plt.subplots(figsize=(7, 1.8))\n'
                      'for row, m in enumerate(chain):\n'
                      '    end = m.valid_until or now\n'
                      '    ax.barh(0, (end - m.valid_from).total_seconds(), left=(m.valid_from - chain[0].valid_from)'
                      '.total_seconds(), color=f"C{row}")\n'
                      '    ax.text((m.valid_from - chain[0].valid_from).total_seconds(), 0.45, m.content, fontsize=8)\n'
                      'ax.set_yticks([]); ax.set_xlabel("seconds since the first version"); '
                      'ax.set_title("Supersession chain of one fact")\nplt.tight_layout(); plt.show()'),
        new_markdown_cell("## Hybrid vs semantic vs keyword search on a LoCoMo-format conversation\n\n"
                          "Set `LOCOMO_PATH` to a LoCoMo file (snap-research/locomo, `data/locomo10.json`) to use "
                          "a real conversation; otherwise the small LoCoMo-format sample shipped with the tests is used."),
        new_code_cell('import os\nfrom headroom_memory.locomo import conversation_memories, read_locomo\n\n'
                      'path = os.environ.get("LOCOMO_PATH") or str(Path.cwd().parent / "tests" / "data" / '
                      '"locomo_tiny.json")\n'
                      'conversation = read_locomo(path)[0]\n'
                      'turns = memory.add_many(conversation_memories(conversation), dedup=False)\n'
                      'user = conversation["sample_id"]\nprint(f"{len(turns)} turns of {user} from {Path(path).name}")\n'
                      'question = conversation["qa"][0]["question"]\nprint("Q:", question)\n'
                      'for mode in ("hybrid", "vector", "text"):\n'
                      '    hits = memory.search(question, user, top_k=3, mode=mode, min_similarity=-1)\n'
                      '    print(f"{mode:>6}:", [h.memory.metadata["dia_id"] for h in hits], '
                      '"evidence:", conversation["qa"][0]["evidence"])'),
        new_markdown_cell("## Stats: memories per category and scope"),
        new_code_cell('stats = memory.stats(user_id="alice")\nprint({k: v for k, v in stats.items() if '
                      'not isinstance(v, dict)})\n'
                      'fig, axes = plt.subplots(1, 2, figsize=(8, 2.5))\n'
                      'for ax, key in zip(axes, ("categories", "scopes")):\n'
                      '    ax.bar(list(stats[key]), list(stats[key].values()), color="C0")\n'
                      '    ax.set_title(f"alice: current memories by {key[:-1] if key == \'scopes\' else \'category\'}")\n'
                      '    ax.tick_params(axis="x", rotation=30)\nplt.tight_layout(); plt.show()'),
        new_code_cell("memory.close()"),
    ]


def with_memory_tour() -> list:
    return [
        new_markdown_cell("# `with_memory` with the openai SDK\n\nRuns against a real endpoint when "
                          "`OPENAI_API_KEY` or `OPENAI_BASE_URL` is set (an Ollama server works too: "
                          "`OPENAI_BASE_URL=http://localhost:11434/v1`, `OPENAI_MODEL=llama3.2`); otherwise "
                          "against a scripted OpenAI-compatible server started on 127.0.0.1."),
        new_code_cell(MODEL_SETUP),
        new_code_cell('import tempfile\nfrom pathlib import Path\nfrom openai import OpenAI\n'
                      'from headroom_memory import with_memory\n\n'
                      'db = Path(tempfile.mkdtemp()) / "chat.db"\n'
                      'morning = with_memory(OpenAI(base_url=BASE_URL, api_key=API_KEY), user_id="bob", '
                      'session_id="morning", db_path=db)\n'
                      'reply = morning.chat.completions.create(model=MODEL, messages=[{"role": "user", '
                      '"content": "I prefer Python for backend work"}])\n'
                      'print(reply.choices[0].message.content)\nprint("stored:", [m.content for m in '
                      'morning.memory.get_all()])\nmorning.close()'),
        new_code_cell('afternoon = with_memory(OpenAI(base_url=BASE_URL, api_key=API_KEY), user_id="bob", '
                      'session_id="afternoon", db_path=db)\n'
                      'stream = afternoon.chat.completions.create(model=MODEL, stream=True, messages=[{"role": '
                      '"user", "content": "Which framework for my new API?"}])\n'
                      'for chunk in stream:\n    if chunk.choices:\n        print(chunk.choices[0].delta.content '
                      'or "", end="")\nprint()\nprint(afternoon.memory.stats()["total"], "memories for bob")\n'
                      'afternoon.close()'),
        new_code_cell("if server is not None:\n    server.__exit__(None, None, None)"),
    ]


def integrations_tour() -> list:
    return [
        new_markdown_cell("# LangChain and LlamaIndex\n\nThe same rule for the model as the `with_memory` "
                          "notebook: a real endpoint when `OPENAI_API_KEY`/`OPENAI_BASE_URL` is set, else a "
                          "scripted server on 127.0.0.1."),
        new_code_cell(MODEL_SETUP),
        new_markdown_cell("## LangChain: `RunnableWithMemory` in an LCEL chain"),
        new_code_cell('import tempfile\nfrom pathlib import Path\n'
                      'from langchain_core.output_parsers import StrOutputParser\n'
                      'from langchain_core.prompts import ChatPromptTemplate\n'
                      'from langchain_openai import ChatOpenAI\n'
                      'from headroom_memory import MemoryConfig, SyncMemory\n'
                      'from langchain_headroom import RunnableWithMemory\n\n'
                      'memory = SyncMemory(MemoryConfig(db_path=Path(tempfile.mkdtemp()) / "lc.db"))\n'
                      'prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{q}")])\n'
                      'model = ChatOpenAI(base_url=BASE_URL, api_key=API_KEY, model=MODEL)\n'
                      'chain = prompt | RunnableWithMemory(runnable=model, memory=memory) | StrOutputParser()\n'
                      'config = {"configurable": {"user_id": "alice", "session_id": "s1"}}\n'
                      'print(chain.invoke({"q": "I prefer Python for backend work"}, config=config))\n'
                      'print("".join(chain.stream({"q": "Which framework for my API?"}, config=config)))\n'
                      'print([m.content for m in memory.visible("alice")])'),
        new_markdown_cell("## LlamaIndex: a chat engine with `HeadroomMemory`"),
        new_code_cell('if server is not None:\n    scripted.calls = 0  # replay the script for this engine\n'
                      'from llama_index.core.chat_engine import SimpleChatEngine\n'
                      'from llama_index.llms.openai import OpenAI as LlamaOpenAI\n'
                      'from llama_index.memory.headroom import HeadroomMemory\n\n'
                      'li_memory = HeadroomMemory.from_defaults(user_id="carol", session_id="s1", memory=memory)\n'
                      'llm = LlamaOpenAI(model="gpt-4o-mini" if server is not None else MODEL, api_base=BASE_URL, '
                      'api_key=API_KEY)\n'
                      'engine = SimpleChatEngine.from_defaults(llm=li_memory.wrap_llm(llm), memory=li_memory)\n'
                      'print(engine.chat("I prefer Python for backend work"))\n'
                      'print([m.content for m in memory.visible("carol")])'),
        new_code_cell("memory.close()\nif server is not None:\n    server.__exit__(None, None, None)"),
    ]


def main() -> None:
    for name, cells in [("01_engine_tour", engine_tour()), ("02_with_memory", with_memory_tour()),
                        ("03_langchain_llamaindex", integrations_tour())]:
        notebook = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                      "language": "python"}})
        nbformat.write(notebook, HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()
