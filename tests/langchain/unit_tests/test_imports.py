from __future__ import annotations

import langchain_headroom

EXPECTED = ["HeadroomChatMessageHistory", "HeadroomMemoryMiddleware", "HeadroomMemoryOutputParser",
            "HeadroomRetriever", "HeadroomStore", "RunnableWithMemory"]


def test_all_imports() -> None:
    assert sorted(langchain_headroom.__all__) == sorted(EXPECTED)
    for name in EXPECTED:
        assert getattr(langchain_headroom, name).__name__ == name


def test_importing_our_package_raises_no_deprecation_warning() -> None:
    """LangChain deprecates its chat-history classes; users who do not use ours
    must not hear about it from an import of ours."""
    import subprocess
    import sys

    code = ("import langchain_headroom as m\n"
            "[getattr(m, n) for n in ('HeadroomMemoryMiddleware', 'HeadroomStore', 'RunnableWithMemory',"
            " 'HeadroomRetriever', 'HeadroomMemoryOutputParser')]")
    done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-W",
                           "error::PendingDeprecationWarning", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
