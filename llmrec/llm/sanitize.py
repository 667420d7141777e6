"""One cleaning function for catalogue text (titles, descriptions) that goes into any prompt.

Catalogue text is untrusted: a title may hold newlines or fake numbering, or spell a chat
control marker. Tokenizers turn a marker written as plain text (``<|im_start|>``, ``[INST]``)
into the real special token, which would let an item close the user turn and open a new one.
:func:`clean_catalogue_text` makes any value one printable line in which no marker of the chat
templates we ship or meet is left intact:

* ChatML (SmolLM2, Qwen2.5): ``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>`` and every other
  ``<|...|>`` (Llama 3 ``<|eot_id|>``, Phi ``<|user|>``; DeepSeek's fullwidth bars become ASCII
  under NFKC and are caught too);
* Gemma: ``<start_of_turn>``, ``<end_of_turn>``, ``<bos>``, ``<eos>``, and any ``<word>`` tag;
* Llama 2 / Mistral: ``<s>``, ``</s>``, ``[INST]``, ``[/INST]``, ``<<SYS>>``, ``<</SYS>>`` and
  Mistral's bracketed control tokens (``[SYSTEM_PROMPT]``, ``[TOOL_CALLS]``, ...);
* BERT-style encoders (MiniLM): ``[CLS]``, ``[SEP]``, ``[MASK]``, ``[PAD]``, ``[UNK]``;
* Alpaca headers (TALLRec's template): ``### Instruction:``, ``### Input:``, ``### Response:``.

Markers are neutralised, not deleted, so a reader still sees what the text said: angle and square
brackets become single guillemets (``<|im_start|>`` -> ``‹|im_start|›``, ``[INST]`` -> ``‹INST›``)
and an Alpaca header loses its hashes. Ordinary text (``a < b > c``, ``Halo 3 [Xbox 360]``) is
left as it is. Cleaning a cleaned text again changes nothing (up to eight levels of HTML escaping).
"""

from __future__ import annotations

import html
import json
import re
import unicodedata

# <|anything|>: ChatML and the Llama 3 / Phi / DeepSeek families. No spaces or brackets inside,
# as in every real token; bounded so a pathological string cannot make the regex slow.
_PIPE_TOKEN = re.compile(r"<(\|[^<>|\s]{1,64}\|)>")
# <word>, </word>, <word|>: Gemma turns, <s>, </s>, <bos>, <unk>, <pad>, <SPECIAL_12>, ...
_ANGLE_TOKEN = re.compile(r"<(\|?/?[A-Za-z_][\w.-]{0,63}\|?)>")
# Llama 2's system block markers.
_SYS_BLOCK = re.compile(r"<<(/?SYS)>>", re.IGNORECASE)
# Bracketed control tokens: Llama 2 / Mistral instruction and tool markers, BERT specials. A fixed
# list, because product titles carry harmless bracketed words ("[Xbox 360]", "[DVD]").
_BRACKET_NAMES = ("INST", "SYS", "SYSTEM_PROMPT", "AVAILABLE_TOOLS", "TOOL_CALLS", "TOOL_RESULTS",
                  "TOOL_CONTENT", "IMG", "IMG_BREAK", "IMG_END", "PREFIX", "MIDDLE", "SUFFIX", "THINK")
_BRACKET_TOKEN = re.compile(r"\[(/?(?:" + "|".join(_BRACKET_NAMES) + r"))\]", re.IGNORECASE)
# BERT specials are upper case in every vocabulary; "[Pad]" in a product title stays.
_BERT_TOKEN = re.compile(r"\[(CLS|SEP|MASK|PAD|UNK)\]")
# Alpaca-style section headers: "### Response:" would start the answer section of TALLRec's prompt.
_ALPACA_HEADER = re.compile(r"#{2,}(\s*(?:instruction|input|response|system|user|assistant)\s*:)", re.IGNORECASE)

_ELLIPSIS = "…"


def neutralise_markers(text: str) -> str:
    """``text`` with every chat/control marker above defused (no other change)."""
    # Repeat until nothing changes: a replacement never forms a new marker, but nested input
    # ("<<|im_start|>|>") is then handled without reasoning about overlaps.
    for _ in range(8):
        before = text
        text = _SYS_BLOCK.sub(r"‹‹\1››", text)
        text = _PIPE_TOKEN.sub(r"‹\1›", text)
        text = _ANGLE_TOKEN.sub(r"‹\1›", text)
        text = _BRACKET_TOKEN.sub(r"‹\1›", text)
        text = _BERT_TOKEN.sub(r"‹\1›", text)
        text = _ALPACA_HEADER.sub(r"#\1", text)
        if text == before:
            break
    return text


def clean_catalogue_text(text: object, max_chars: int | None = None) -> str:
    """One safe printable line for catalogue text, for any prompt (LLMRank, TALLRec, ...).

    HTML entities decoded (scraped catalogues carry ``&amp;``), NFKC-normalised (fullwidth forms
    become ASCII, so fullwidth look-alikes of markers are caught), newlines, tabs and other
    non-printable characters turned into spaces, whitespace collapsed, chat markers neutralised
    (see the module docstring), then cut to ``max_chars`` with a trailing ``…`` when longer.
    ``None`` becomes ``""``.
    """
    value = "" if text is None else str(text)
    # Until stable: "&amp;lt;" is a scraping artefact for "<", "&#xFF1C;" decodes to a fullwidth
    # "<" that NFKC makes ASCII; stopping early would let a second cleaning change the text.
    for _ in range(8):
        # "…" is kept as it is (NFKC would make it "..."), so the cut marker below survives a
        # second cleaning and cleaning stays idempotent.
        decoded = _ELLIPSIS.join(unicodedata.normalize("NFKC", part) for part in html.unescape(value).split(_ELLIPSIS))
        if decoded == value:
            break
        value = decoded
    # Non-printables become spaces (never deleted): deleting a zero-width character could join
    # "<|im_" and "start|>" into a marker that the step below would then have to catch.
    value = "".join(ch if ch.isprintable() else " " for ch in value)
    value = " ".join(value.split())
    value = neutralise_markers(value)
    if max_chars is not None and len(value) > max_chars:
        value = value[: max(0, max_chars - 1)].rstrip() + _ELLIPSIS
    return value


def quote_catalogue_text(text: object, max_chars: int | None = None) -> str:
    """:func:`clean_catalogue_text` in double quotes, inner quotes and backslashes escaped (JSON)."""
    return json.dumps(clean_catalogue_text(text, max_chars), ensure_ascii=False)


__all__ = ["clean_catalogue_text", "neutralise_markers", "quote_catalogue_text"]
