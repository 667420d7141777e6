"""HFCausalLM on a tiny random Llama with a real (tiny, trained here) byte-level BPE tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec.llm import AmbiguousOptionsError, LanguageModel, ResponseCache
from llmrec.llm.hf import HFCausalLM
from llmrec.llm.testing import CHATML_TEMPLATE, DEFAULT_WORDS, tiny_llama, train_tiny_tokenizer

# The movie titles the tiny tokenizer was trained on (it knows them as whole words).
TITLES = list(DEFAULT_WORDS[:12])


@pytest.fixture(scope="module")
def chat_tokenizer():
    return train_tiny_tokenizer(chat_template=CHATML_TEMPLATE)


@pytest.fixture(scope="module")
def lm(chat_tokenizer):
    return HFCausalLM(tiny_llama(len(chat_tokenizer)), chat_tokenizer, name="tiny-llama", show_progress=False)


@pytest.fixture(scope="module")
def base_lm():
    tokenizer = train_tiny_tokenizer(chat_template=None)
    return HFCausalLM(tiny_llama(len(tokenizer), seed=1), tokenizer, name="tiny-base", show_progress=False)


PROMPT = [
    {"role": "system", "content": "recommend the next movie"},
    {"role": "user", "content": "user watched The Matrix and Alien and Predator. Answer:"},
]


def test_satisfies_protocol(lm):
    assert isinstance(lm, LanguageModel)


def test_chat_template_applied_to_messages_and_strings(lm, chat_tokenizer):
    rendered = lm.render(PROMPT)
    assert rendered.startswith("<|im_start|>system\nrecommend the next movie<|im_end|>\n")
    assert rendered.endswith("<|im_start|>assistant\n")
    assert lm.render("Yes or No?") == "<|im_start|>user\nYes or No?<|im_end|>\n<|im_start|>assistant\n"
    # The special tokens are single ids, not spelled out character by character.
    ids = lm.encode_prompt(PROMPT)
    assert ids[0] == chat_tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids.count(chat_tokenizer.convert_tokens_to_ids("<|im_end|>")) == 2


def test_no_template_means_plain_text(base_lm):
    assert base_lm.render("Answer: Yes") == "Answer: Yes"
    assert (
        base_lm.render(PROMPT) == "recommend the next movie\n\nuser watched The Matrix and Alien and Predator. Answer:"
    )
    with pytest.raises(ValueError, match="no chat template"):
        HFCausalLM(base_lm.model, base_lm.tokenizer, use_chat_template=True)


def test_batched_generation_one_answer_per_prompt_with_counts(lm):
    prompts = [PROMPT, "Yes or No?", "user watched Heat", [{"role": "user", "content": "Jaws"}], "B"]
    before = lm.usage.completion_tokens
    generations = lm.generate(prompts, max_new_tokens=6)
    assert len(generations) == len(prompts)
    for prompt, gen in zip(prompts, generations, strict=True):
        assert gen.prompt_tokens == len(lm.encode_prompt(prompt))
        assert 0 <= gen.completion_tokens <= 6
        assert isinstance(gen.text, str) and not gen.cached
    assert lm.usage.completion_tokens - before == sum(g.completion_tokens for g in generations)
    # Left padding must not change a greedy answer: each prompt alone gives the same text.
    for prompt, gen in zip(prompts, generations, strict=True):
        assert lm.generate([prompt], max_new_tokens=6)[0].text == gen.text


def test_generation_stop_string_is_cut_and_halts(lm):
    import re

    prompt = "user watched The Matrix"
    free = lm.generate([prompt], max_new_tokens=8)[0]
    word = re.search(r"(?<=.)[A-Za-z]{3,}", free.text)  # a clean word after the first character
    if word is None:
        pytest.skip(f"the random model's answer {free.text!r} holds no clean word to stop on")
    cut = lm.generate([prompt], max_new_tokens=8, stop=[word.group()])[0]
    assert cut.text == free.text[: word.start()]
    if not free.text.endswith(word.group()):
        assert cut.completion_tokens < free.completion_tokens  # generation stopped, not only the text


def test_sampling_differs_from_greedy_somewhere(lm):
    torch.manual_seed(0)
    samples = {lm.generate(["user watched"], max_new_tokens=5, temperature=5.0)[0].text for _ in range(4)}
    assert len(samples) > 1


def test_shared_prompt_loglikelihood_equals_full_forwards(lm, base_lm):
    candidates = TITLES + ["Yes", "The Matrix and Alien and Frozen and Heat", ""]
    for model, prompt in [(lm, PROMPT), (base_lm, "user watched The Matrix. Answer: ")]:
        shared = model.loglikelihood(prompt, candidates)
        naive = model.loglikelihood_full_forward(prompt, candidates)
        assert shared.shape == (len(candidates),)
        assert np.all(shared[:-1] < 0) and shared[-1] == 0.0  # the empty continuation has probability 1
        assert np.max(np.abs(shared - naive)) < 1e-4
        assert np.std(shared[:-1]) > 0.1  # the check above is not comparing constants


def test_loglikelihood_matches_manual_token_sum(base_lm):
    # Independent check: score "Answer:" -> " Yes" by hand from one forward of the joined text.
    tok = base_lm.tokenizer
    prompt_ids = tok("user watched Heat. Answer:")["input_ids"]
    cont_ids = tok(" Yes")["input_ids"]
    full = torch.tensor([prompt_ids + cont_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(base_lm.model(full).logits[0], dim=-1)
    expected = sum(logprobs[len(prompt_ids) - 1 + k, t].item() for k, t in enumerate(cont_ids))
    # Trailing space of the prompt moves onto the continuation: both spellings score the same.
    got = base_lm.loglikelihood("user watched Heat. Answer: ", ["Yes"])[0]
    assert got == pytest.approx(expected, abs=1e-4)
    assert base_lm.loglikelihood("user watched Heat. Answer:", [" Yes"])[0] == pytest.approx(expected, abs=1e-4)


def test_loglikelihood_chunks_give_same_scores(lm):
    candidates = TITLES * 3
    whole = lm.loglikelihood(PROMPT, candidates)
    small = HFCausalLM(lm.model, lm.tokenizer, name="tiny", score_batch_size=4, show_progress=False)
    assert np.max(np.abs(small.loglikelihood(PROMPT, candidates) - whole)) < 1e-4
    assert np.allclose(whole[: len(TITLES)], whole[len(TITLES) : 2 * len(TITLES)], atol=1e-5)
    batch = lm.loglikelihood_batch([(PROMPT, TITLES[:3]), ("user watched Jaws", TITLES[3:5])])
    assert [b.shape for b in batch] == [(3,), (2,)]
    assert np.allclose(batch[0], whole[:3], atol=1e-5)


def test_next_token_logits_agree_with_full_forward(lm, chat_tokenizer):
    options = ["Yes", "No", "A", "B"]
    logits = lm.next_token_logits(PROMPT, options)
    ids = torch.tensor([lm.encode_prompt(PROMPT)])
    with torch.no_grad():
        last = lm.model(ids).logits[0, -1]
    first_ids = [chat_tokenizer(o, add_special_tokens=False)["input_ids"][0] for o in options]
    assert logits.shape == (4,)
    assert np.allclose(logits, last[first_ids].numpy(), atol=1e-5)


def test_next_token_logits_reject_shared_first_token(lm, chat_tokenizer):
    # Two titles whose first token is the same piece cannot be told apart by one logit.
    a, b = "The Matrix", "The Matrix and Jaws"
    assert chat_tokenizer(a)["input_ids"][0] == chat_tokenizer(b)["input_ids"][0]
    with pytest.raises(AmbiguousOptionsError, match="both start with token"):
        lm.next_token_logits(PROMPT, [a, b])


def test_token_count(lm, chat_tokenizer):
    text = "user watched The Matrix and Heat"
    assert lm.token_count(text) == len(chat_tokenizer(text)["input_ids"]) > 0
    assert lm.token_count("") == 0


def test_generation_cache_hits_skip_the_model(lm, tmp_path):
    cached_lm = HFCausalLM(
        lm.model,
        lm.tokenizer,
        name="tiny-llama",
        response_cache=ResponseCache(tmp_path / "c.db"),
        show_progress=False,
    )
    first = cached_lm.generate(["user watched Heat", "Jaws"], max_new_tokens=4)
    requests = cached_lm.usage.requests
    second = cached_lm.generate(["user watched Heat", "Jaws"], max_new_tokens=4)
    assert [g.text for g in second] == [g.text for g in first]
    assert all(g.cached for g in second) and cached_lm.usage.cache_hits == 2
    assert cached_lm.usage.requests == requests  # no new model call
    # Different parameters are a different key.
    assert not cached_lm.generate(["Jaws"], max_new_tokens=3)[0].cached
