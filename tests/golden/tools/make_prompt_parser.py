"""Fixture generator: AUTOMATIC1111's prompt attention parser (`parse_prompt_attention`) on 40+ prompts.

A1111's code cannot run here (its module imports the whole web UI), so this file holds its algorithm, written from
modules/prompt_parser.py of AUTOMATIC1111/stable-diffusion-webui (commit 28bd8e142d5f77b71ae8d7d7140b5da1b3a49906,
the version with `:\\s*weight\\s*)` and BREAK). Before writing anything it
  1. runs A1111's own doctests of that function (inputs and expected outputs quoted below, from its docstring), and
  2. runs diffusers' runnable copy (examples/community/lpw_stable_diffusion.py of diffusers v0.29.2, which has the
     older weight pattern without whitespace and no BREAK) on every prompt where the two versions agree by
     construction (no "BREAK", no whitespace between ':' and the weight or before ')'), and requires equal output.

Output: tests/golden/prompts/parser.json, `cases: [{prompt, fragments: [[text, weight], ...]}]` where the fragment
["BREAK", -1] is A1111's chunk break, or `{prompt, error}` where A1111 raises (a weight Python's float() rejects).

Run: REF_SRC=<reference sources> /usr/bin/python3 tests/golden/tools/make_prompt_parser.py
(REF_SRC as in /work/shared/reference-stack; only the lpw file is read from it, or from the bare diffusers mirror
given as DIFFUSERS_GIT when REF_SRC lacks it.)
"""
import ast
import json
import os
import re
import subprocess
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "prompts", "parser.json")

# --- A1111's algorithm, restated ------------------------------------------------------------------------------------
# One token per match, tried in this order (Python `re` alternation is first-match): the five escapes \( \) \[ \] \\,
# a lone backslash, the two openers, a weighted closer ":<number>)" (whitespace allowed around the number), the two
# plain closers, a run of ordinary characters, a lone colon.
TOKEN = re.compile(r"\\[()\[\]\\]|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()\[\]:]+|:")
BREAK_SPLIT = re.compile(r"\s*\bBREAK\b\s*", re.S)
ROUND, SQUARE = 1.1, 1 / 1.1


def a1111_parse(prompt):
    out = []          # [text, weight] pairs in order; ["BREAK", -1] marks a chunk break
    open_round, open_square = [], []   # indices into `out` where each still-open bracket started

    def scale_from(start, factor):
        for k in range(start, len(out)):
            out[k][1] *= factor

    for match in TOKEN.finditer(prompt):
        piece, number = match.group(0), match.group(1)
        if piece.startswith("\\"):
            out.append([piece[1:], 1.0])        # escaped character (or nothing, for a lone backslash)
        elif piece == "(":
            open_round.append(len(out))
        elif piece == "[":
            open_square.append(len(out))
        elif number is not None and open_round:
            scale_from(open_round.pop(), float(number))   # float() may raise, as in A1111
        elif piece == ")" and open_round:
            scale_from(open_round.pop(), ROUND)
        elif piece == "]" and open_square:
            scale_from(open_square.pop(), SQUARE)
        else:
            for n, part in enumerate(BREAK_SPLIT.split(piece)):
                if n:
                    out.append(["BREAK", -1])
                out.append([part, 1.0])
    for start in open_round:    # brackets left open apply to the rest of the prompt
        scale_from(start, ROUND)
    for start in open_square:
        scale_from(start, SQUARE)
    if not out:
        out = [["", 1.0]]
    k = 0
    while k + 1 < len(out):     # neighbours of equal weight become one fragment
        if out[k][1] == out[k + 1][1]:
            out[k][0] += out[k + 1][0]
            del out[k + 1]
        else:
            k += 1
    return out


# --- A1111's doctests (modules/prompt_parser.py, parse_prompt_attention docstring) -----------------------------------
DOCTESTS = [
    ("normal text", [["normal text", 1.0]]),
    ("an (important) word", [["an ", 1.0], ["important", 1.1], [" word", 1.0]]),
    ("(unbalanced", [["unbalanced", 1.1]]),
    ("\\(literal\\]", [["(literal]", 1.0]]),
    ("(unnecessary)(parens)", [["unnecessaryparens", 1.1]]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [["a ", 1.0], ["house", 1.5730000000000004], [" ", 1.1], ["on", 1.0], [" a ", 1.1], ["hill", 0.55],
      [", sun, ", 1.1], ["sky", 1.4641000000000006], [".", 1.1]]),
]

# --- further prompts ---------------------------------------------------------------------------------------------------
MORE = [
    # weights and nesting
    "(red:1.3) fox", "a (red:1.3) fox, [blurry], (((masterpiece)))", "((a)(b))", "[[[x]]]", "([x])", "[(x)]",
    "((x:2):0.5)", "(x:0)", "(x:-1.5)", "(x:+2)", "(x:.5)", "(x:5.)", "(x: 1.2 )", "(x:\t0.8\n)", "(a (b:2) c:1.5)",
    "(a [b (c [d (e)])])", "(x:1.2.3)", "(x:.)", "(x:1e2)", "(x:abc)", "x:1.2)", "(x:1.2", "(x:1.2]",
    "(a:1)(b:1)", "(a)(b)[c][d]", "(a:1.1)(b)",
    # unbalanced and stray brackets
    "((unclosed", "[[unclosed", "a ) b ] c", "closed) (open", "([mixed)", "(a]b)", "))((", "][", ":::",
    "a : b", "(a:b:1.5)",
    # escapes
    "\\(literal\\)", "\\[x\\]", "back\\\\slash", "lone\\back", "end\\", "\\\\(x)", "(\\(x\\))", "\\:(x:1.5)",
    # BREAK
    "a BREAK b", "a BREAK", "BREAK b", "BREAK", "a  BREAK  BREAK b", "aBREAK b", "a BREAKb", "a break b",
    "(a BREAK b:1.5)", "[a BREAK b]", "a,BREAK,b", "a\nBREAK\nb", "a BREAK (b:1.2) BREAK [c]",
    "(BREAK:-1)", "x (a BREAK b:-1) y", "BREAK BREAK",
    # unicode, whitespace, empty
    "", " ", "()", "[]", "(:1.5)", "café (naïve:1.2) 日本 [emoji 🚀]", "(日本:1.3)", "(x:\u0661.\u0665)",
    "a\u3000BREAK\u3000b", "é BREAK ü", "\u00e9BREAK b",
    "(x:\U0001d7cf.\U0001d7d3)", "(x:1.5\x1c)", "a\x1cBREAK\x1fb", "(x:\u00a01.5\u2003)", "a_BREAK b",
    # long, typical
    "masterpiece, best quality, (ultra-detailed:1.2), [lowres], ((sharp focus)), 8k, (cinematic lighting:1.1), "
    "a (fox:1.3) standing on a (snowy hill:0.8) at (sunset:1.05), [[jpeg artifacts]]",
]


def lpw_parser():
    """diffusers' community copy of the parser, executed from its own source (functions only, no torch needed)."""
    rel = os.path.join("examples", "community", "lpw_stable_diffusion.py")
    path = os.path.join(os.environ.get("REF_SRC", "/nonexistent"), "diffusers-v0.29.2", rel)
    if os.path.exists(path):
        source = open(path, encoding="utf-8").read()
    else:
        git = os.environ.get("DIFFUSERS_GIT", "/work/.mirror/huggingface+diffusers/repo")
        source = subprocess.run(["git", "--git-dir", git, "show", "v0.29.2:" + rel.replace(os.sep, "/")],
                                check=True, capture_output=True, text=True).stdout
    tree = ast.parse(source)
    keep = [n for n in tree.body if (isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "re_attention" for t in n.targets))
            or (isinstance(n, ast.FunctionDef) and n.name == "parse_prompt_attention")]
    assert len(keep) == 2, "lpw_stable_diffusion.py no longer has re_attention + parse_prompt_attention"
    namespace = {"re": re}
    exec(compile(ast.Module(body=keep, type_ignores=[]), "lpw_stable_diffusion.py", "exec"), namespace)
    return namespace["parse_prompt_attention"]


def lpw_comparable(prompt):
    return "BREAK" not in prompt and not re.search(r":\s+[+-]?[.\d]|:[+-]?[.\d]+\s+\)", prompt)


def main():
    for prompt, expected in DOCTESTS:
        got = a1111_parse(prompt)
        assert got == expected, f"A1111 doctest failed for {prompt!r}: {got} != {expected}"
    lpw = lpw_parser()
    cases, cross_checked = [], 0
    for prompt in [p for p, _ in DOCTESTS] + MORE:
        try:
            fragments = a1111_parse(prompt)
        except ValueError as e:
            cases.append({"prompt": prompt, "error": f"ValueError: {e}"})
            continue
        if lpw_comparable(prompt):
            assert lpw(prompt) == fragments, f"lpw disagrees on {prompt!r}: {lpw(prompt)} != {fragments}"
            cross_checked += 1
        cases.append({"prompt": prompt, "fragments": fragments})
    assert len(cases) >= 40
    doc = {
        "what": "AUTOMATIC1111 parse_prompt_attention outputs; fragment ['BREAK', -1] = chunk break; weights are "
                "Python floats (repr round-trips)",
        "reference": "AUTOMATIC1111/stable-diffusion-webui modules/prompt_parser.py @ 28bd8e142d5f77b71ae8d7d7140b5da1b3a49906, "
                     "algorithm restated in make_prompt_parser.py",
        "checks": {"a1111_doctests_passed": len(DOCTESTS), "lpw_v0.29.2_cross_checked": cross_checked,
                   "python": sys.version.split()[0]},
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases ({sum('error' in c for c in cases)} errors), {len(DOCTESTS)} doctests passed, "
          f"{cross_checked} cross-checked with lpw -> {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
