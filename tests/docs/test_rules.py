"""The docs test's rules and its reading of Markdown: every rule still matches a document, and every document
with commands is tested."""

from __future__ import annotations

import re
from pathlib import Path

from ._harness import DOCUMENTS, ROOT, RULES, Block, apply_rules, blocks, shell_commands


def test_every_rule_matches_a_document():
    text = "\n".join((ROOT / d).read_text(encoding="utf-8") for d in DOCUMENTS)
    for rule in RULES:
        assert re.search(rule.pattern, text, flags=re.MULTILINE), f"rule {rule.pattern!r} matches nothing: remove it"


def test_every_document_with_code_has_its_test():
    tested = {p.name for p in Path(__file__).parent.glob("test_*_doc.py")}
    for d in DOCUMENTS:
        if blocks(ROOT / d):
            assert f"test_{Path(d).stem.lower()}_doc.py" in tested, d


def test_commands_are_read_as_a_shell_would():
    block = Block("bash", 10, "deepscope count a/ \\\n    --out c.csv   # a comment\n\ncat > x.yaml <<'EOF'\nk: v\nEOF\n"
                              "make demo   # everything")
    cmds = shell_commands(block)
    assert cmds == [(10, "deepscope count a/ --out c.csv"), (13, "cat > x.yaml <<'EOF'\nk: v\nEOF"),
                    (16, "make demo")]
    assert apply_rules("make demo") is None
    assert apply_rules("deepscope train count --data d --out r") == "deepscope train count --data d --out r --epochs 1"
    assert apply_rules("deepscope run p.yaml --out r --workers 8") == "deepscope run p.yaml --out r -j 0"
    assert apply_rules("deepscope train restore --data d --out r") == "deepscope train restore --crop 64 --data d --out r --epochs 1"
    assert apply_rules("deepscope train restore --crop 32 --data d") == "deepscope train restore --crop 32 --data d --epochs 1"
