"""Run every ```python block of a Markdown file, in order, in one namespace (top-level await allowed).

    python -m __tests__.support.doc_samples docs/SOME_DOC.md
"""

import ast
import inspect
import re
import sys
from pathlib import Path

import anyio

BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(markdown: Path) -> list[str]:
    return BLOCK.findall(markdown.read_text())


async def run(markdown: Path) -> int:
    namespace: dict[str, object] = {"__name__": f"docs_{markdown.stem.lower()}"}
    samples = blocks(markdown)
    for number, source in enumerate(samples, start=1):
        code = compile(source, f"{markdown.name}#block{number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)  # noqa: S307 - our own documentation
        if inspect.isawaitable(result):
            await result
    return len(samples)


if __name__ == "__main__":
    count = anyio.run(run, Path(sys.argv[1]))
    print(f"{count} samples ran")
