"""Writes (or checks) tests/golden/tokenizer.json: 69 prompts through three tokenizers, by running the tokenizers
themselves.

For each prompt of PROMPTS:
  open_clip_encode, open_clip_tokenize_77   open_clip 2.24.0's SimpleTokenizer (what the original SD 2.x code feeds the
                                            text encoder): encode() and tokenize() with 77 positions;
  hf_clip_tokenizer_77                      transformers' (slow, Python) CLIPTokenizer from the SD 2.x tokenizer folder,
                                            called as diffusers' pipelines call it (padding="max_length", max_length 77,
                                            truncation), with ftfy importable;
  hf_clip_tokenizer_untruncated, hf_tokens  the same tokenizer without truncation or padding, and its token strings;
  hf_clip_tokenizer_no_ftfy_77              the same tokenizer built while ftfy cannot be imported (it then cleans the
                                            text with its BasicTokenizer);
and where the variants disagree. The tokenizer folder is tests/golden/txt2img_v/model/tokenizer (a copy of the shared
clip-tokenizer folder that every golden model holds).

Reference stack: /work/shared/reference-stack (transformers 5728b5ad, ftfy 6.3.1, open_clip 2.24.0, diffusers 0.29.2
only for the versions block). Run from the repository root:

    REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_tokenizer_cases.py [--write]

Without --write it writes into a temporary folder and compares with the committed file (golden_io.py).
"""
import os
import sys

sys.path.insert(0, os.environ.get("REFERENCE_STACK", "/work/shared/reference-stack"))
import refenv  # noqa: E402  (puts the pinned reference sources on the path)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

import diffusers  # noqa: E402,F401  (before open_clip, whose import stubs torchvision)
import ftfy  # noqa: E402
from transformers import CLIPTokenizer  # noqa: E402

TOKENIZER = os.path.join(golden_io.GOLDEN, "txt2img_v", "model", "tokenizer")
MAX_LENGTH = 77

PROMPTS = [
    '',
    ' ',
    'a photo of a cat',
    'A Photo Of A Cat',
    'A PHOTOGRAPH OF AN ASTRONAUT RIDING A HORSE',
    'a photograph of an astronaut riding a horse',
    'hello world!',
    'Hello, World!!!',
    "What's up? I'm fine, you're great, they've gone, we'll see, he'd go",
    "don't DON'T Don't",
    'multiple     spaces\tand\ttabs\nand\nnewlines',
    '   leading and trailing whitespace   ',
    'punctuation: ;:,.!?()[]{}<>"\'`~@#$%^&*-_=+|\\/',
    'a--b__c..d,,e',
    'numbers 1234567890 and 3.14159 and 1,000,000',
    '2024-01-01 12:30:45',
    '4k 8K uhd 1080p f/1.8 50mm',
    'caf\xe9 cr\xe8me br\xfbl\xe9e',
    'na\xefve r\xe9sum\xe9 fa\xe7ade co\xf6perate',
    '\xc5ngstr\xf6m \xd8resund Stra\xdfe',
    '\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03b3\u03c1\u03ac\u03bc\u03bc\u03b1\u03c4\u03b1',
    '\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442',
    '\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8',
    '\u4e2d\u6587\u5b57\u7b26\u6d4b\u8bd5',
    '\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8',
    '\u0627\u0644\u0639\u0631\u0628\u064a\u0629',
    'emoji \U0001f600\U0001f603\U0001f604 \U0001f431\u200d\U0001f464 \U0001f44d\U0001f3fd \u2764\ufe0f',
    '\U0001f680 to the moon \U0001f315',
    'flags \U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5',
    'html &amp; entities &lt;b&gt; &quot;quoted&quot; &#39;apos&#39; &nbsp;',
    '&amp;amp; double escaped',
    '<|startoftext|> literal special tokens <|endoftext|>',
    'masterpiece, best quality, (ultra detailed:1.2), [blurry], {fantasy}',
    'a (((very))) emphasized prompt',
    'mixed CASE with CamelCaseWords and snake_case_words',
    'URL https://example.com/path?query=1&x=2',
    'email someone@example.com',
    'hashtags #sunset #beach #nofilter',
    'unicode quotes \u201csmart\u201d \u2018single\u2019 \u2014 em dash \u2013 en dash \u2026 ellipsis',
    'fullwidth \uff21\uff22\uff23\uff11\uff12\uff13',
    'ligatures \ufb01 \ufb02 and superscripts x\xb2 y\xb3',
    'mojibake caf\xc3\xa9 and \xe2\u20ac\u0153quotes\xe2\u20ac\x9d',
    'zero\u200bwidth\u200bspace and non\xa0breaking',
    'control\x07chars\x1bhere',
    'accents \xc0\xc9\xce\xd5\xdc \xe0\xe9\xee\xf5\xfc',
    "dog's ball's owner's",
    '!!!',
    '!',
    'a!b!c',
    '...',
    "'s 't 're",
    'ALLCAPS',
    'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
    'supercalifragilisticexpialidocious antidisestablishmentarianism',
    'a beautiful landscape painting of mountains and rivers with trees and clouds and a bright blue sky, in the style '
    'of a famous artist, highly detailed, trending on artstation, octane render, unreal engine, volumetric lighting, '
    '8k resolution, masterpiece, award winning photograph, sharp focus, bokeh',
    ' '.join(f'word{i}' for i in range(90)),
    ', '.join(['red', 'green', 'blue', 'yellow', 'cyan', 'magenta'] * 15),
    'one two three four five six seven eight nine ten ' * 8,
    'tab\tseparated\tvalues',
    'trailing newline\n',
    '\uff24\uff32\uff21\uff37\uff29\uff2e\uff27 of a \uff43\uff41\uff54',
    '\ufb01ve \ufb02owers',
    'snowman \u2603 and music \u266b and math \u2211\u222b\u221a',
    'a photo of a cat <|endoftext|> dog',
    '<start_of_text> open_clip special token names <end_of_text>',
    "wow! amazing!! (pad token is '!')",
    '\xa1Hola! \xbfQu\xe9 tal?',
    '\xdcn\xefc\xf6d\xe9',
    'ko\u0301sme (combining acute) vs k\xf3sme',
]

REFERENCE_FIELDS = {
    "open_clip_tokenize_77": "open_clip tokenizer.tokenize() (what the original SD 2.x code feeds the text encoder); "
                             "zero-padded. ftfy.fix_text + html.unescape twice + whitespace clean + lower-case before "
                             "BPE.",
    "open_clip_encode": "SimpleTokenizer.encode(): text token ids without start/end tokens, untruncated.",
    "hf_clip_tokenizer_77": "CLIPTokenizer (python, slow) from the clip-tokenizer folder, called as the diffusers "
                            "pipeline does: padding='max_length', max_length=77, truncation=True; ftfy installed "
                            "(ftfy.fix_text + whitespace clean + lower-case, no html unescape).",
    "hf_clip_tokenizer_untruncated": "same tokenizer, truncation=False, no padding.",
    "hf_clip_tokenizer_no_ftfy_77": "CLIPTokenizer when ftfy is NOT installed (BasicTokenizer clean-up: control chars "
                                    "removed, whitespace split, CJK chars split, lower-case, accents kept).",
    "hf_tokens": "BPE token strings of hf_clip_tokenizer_untruncated (byte-level unicode alphabet, '</w>' marks word "
                 "ends).",
}

# (name in `differences`, key in `difference_counts`, the two fields compared)
DIFFERENCES = [
    ("open_clip != hf(ftfy)", "open_clip_vs_hf_ftfy", "open_clip_tokenize_77", "hf_clip_tokenizer_77"),
    ("open_clip != hf(no ftfy)", "open_clip_vs_hf_no_ftfy", "open_clip_tokenize_77", "hf_clip_tokenizer_no_ftfy_77"),
    ("hf(ftfy) != hf(no ftfy)", "hf_ftfy_vs_hf_no_ftfy", "hf_clip_tokenizer_77", "hf_clip_tokenizer_no_ftfy_77"),
]


def tokenizer_without_ftfy():
    """CLIPTokenizer as it is built where ftfy is not installed: its constructor's `import ftfy` fails."""
    saved = sys.modules.get("ftfy")
    sys.modules["ftfy"] = None  # makes `import ftfy` raise ImportError
    try:
        return CLIPTokenizer.from_pretrained(TOKENIZER)
    finally:
        sys.modules["ftfy"] = saved


def case(prompt, open_clip, hf, hf_no_ftfy):
    def padded(tok):
        return tok(prompt, padding="max_length", max_length=MAX_LENGTH, truncation=True).input_ids

    encoded = open_clip.encode(prompt)
    untruncated = hf(prompt, truncation=False).input_ids
    c = {
        "prompt": prompt,
        "open_clip_encode": encoded,
        "open_clip_tokenize_77": open_clip([prompt], context_length=MAX_LENGTH)[0].tolist(),
        "hf_clip_tokenizer_77": padded(hf),
        "hf_clip_tokenizer_untruncated": untruncated,
        "hf_clip_tokenizer_no_ftfy_77": padded(hf_no_ftfy),
        "hf_tokens": hf.convert_ids_to_tokens(untruncated),
        "num_text_tokens_open_clip": len(encoded),
        "truncated": len(encoded) > MAX_LENGTH - 2,
    }
    c["differences"] = [name for name, _, a, b in DIFFERENCES if c[a] != c[b]]
    return c


def main():
    args = golden_io.parse_args(__doc__.splitlines()[0])
    out = golden_io.Output(args, ["tokenizer.json"])
    open_clip = refenv.import_open_clip("tokenizer").SimpleTokenizer()
    hf = CLIPTokenizer.from_pretrained(TOKENIZER)
    assert hf.fix_text is ftfy.fix_text
    hf_no_ftfy = tokenizer_without_ftfy()
    assert hf_no_ftfy.fix_text is None
    cases = [case(p, open_clip, hf, hf_no_ftfy) for p in PROMPTS]
    doc = {
        "description": "CLIP BPE tokenizer golden cases (SD 2.x tokenizer: max length 77, <|startoftext|>=49406, "
                       "<|endoftext|>=49407, padding with '!' = id 0, truncation keeps 75 text tokens then appends "
                       "<|endoftext|>).",
        "reference_fields": REFERENCE_FIELDS,
        "difference_counts": {key: sum(name in c["differences"] for c in cases) for name, key, _, _ in DIFFERENCES},
        "versions": golden_io.versions(ftfy=ftfy.__version__,
                                       open_clip=refenv.import_open_clip("version").__version__),
        "vocab_size": hf.vocab_size,
        "cases": cases,
    }
    golden_io.write_json(out.path("tokenizer.json"), doc, indent=2, ensure_ascii=False)
    sys.exit(out.finish())


if __name__ == "__main__":
    main()
