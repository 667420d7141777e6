"""LLM backend costs on this machine: load times, prompt/generation speed, shared-prompt scoring.

    python benchmarks/bench_llm.py [--models smollm2-135m,qwen2.5-0.5b,gemma3-270m] [--threads N]

For each packaged model: the first load (GGUF conversion into a fresh temporary cache) and the
cached load (safetensors), prompt throughput (one forward of a ~300-token prompt), greedy
generation speed, and scoring 20 candidate titles after a history prompt two ways: the shared
prompt cache (``loglikelihood``) and 20 naive full forwards, with their ratio and largest score
difference. Default: SmolLM2 only (about 2 minutes); Qwen and Gemma are opt-in (several minutes each).
Writes benchmarks/results/llm_backends.json and rebuilds RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _record import markdown_table, record  # noqa: E402

HISTORY = [
    "Alien (1979)",
    "The Terminator (1984)",
    "Blade Runner (1982)",
    "Aliens (1986)",
    "RoboCop (1987)",
    "Total Recall (1990)",
    "The Thing (1982)",
    "Predator (1987)",
    "Star Wars (1977)",
    "Brazil (1985)",
]
CANDIDATES = [
    "Interstellar (2014)",
    "Frozen (2013)",
    "Notting Hill (1999)",
    "The Matrix (1999)",
    "Toy Story (1995)",
    "Pretty Woman (1990)",
    "Jurassic Park (1993)",
    "Heat (1995)",
    "Jaws (1975)",
    "Gattaca (1997)",
    "Casablanca (1942)",
    "Dune (2021)",
    "Titanic (1997)",
    "Moon (2009)",
    "Arrival (2016)",
    "Amelie (2001)",
    "Die Hard (1988)",
    "Contact (1997)",
    "Her (2013)",
    "Ex Machina (2014)",
]


def history_prompt() -> list[dict[str, str]]:
    watched = "\n".join(f"- {title}" for title in HISTORY)
    return [
        {
            "role": "user",
            "content": (
                "You recommend movies. Here is, in order, what a user watched recently, with a note on each "
                "genre they enjoy: science fiction, action, horror, dystopia.\n"
                f"{watched}\n"
                "Consider their taste in tense, atmospheric science fiction, practical effects and strong "
                "directors, and what they have not seen yet. Which single movie should they watch next? "
                "Answer with the title only."
            ),
        }
    ]


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def bench_model(name: str, gen_tokens: int, repeats: int) -> dict:
    import numpy as np
    import torch

    from llmrec.llm import load_llm

    saved = os.environ.get("LLMREC_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="llmrec-bench-") as cache:
        os.environ["LLMREC_CACHE_DIR"] = cache  # a fresh cache, so the first load converts the GGUF
        try:
            first_load, _ = timed(lambda: load_llm(name, show_progress=False))
            cached_load, lm = timed(lambda: load_llm(name, show_progress=False))
        finally:
            if saved is None:
                os.environ.pop("LLMREC_CACHE_DIR", None)
            else:
                os.environ["LLMREC_CACHE_DIR"] = saved

    prompt = history_prompt()
    ids = torch.tensor([lm.encode_prompt(prompt)])
    with torch.inference_mode():
        lm.model(ids)  # warm-up
        forward_s, _ = timed(lambda: lm.model(ids), repeats)
    gen_s, gens = timed(lambda: lm.generate([prompt], max_new_tokens=gen_tokens), 1)
    new_tokens = gens[0].completion_tokens

    cont_tokens = sum(lm.token_count(" " + c) for c in CANDIDATES)
    shared_s, shared = timed(lambda: lm.loglikelihood(prompt, CANDIDATES), repeats)
    naive_s, naive = timed(lambda: lm.loglikelihood_full_forward(prompt, CANDIDATES), repeats)
    return {
        "model": name,
        "first_load_s": first_load,
        "cached_load_s": cached_load,
        "prompt_tokens": ids.shape[1],
        "prompt_tok_per_s": ids.shape[1] / forward_s,
        "gen_tokens": new_tokens,
        "gen_tok_per_s": new_tokens / gen_s if new_tokens else None,
        "score_20_shared_s": shared_s,
        "score_20_naive_s": naive_s,
        "speedup": naive_s / shared_s,
        "max_abs_diff": float(np.max(np.abs(np.asarray(shared) - np.asarray(naive)))),
        "candidate_tokens": cont_tokens,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m", help="comma-separated packaged model names")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--gen-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median) for forward and scoring")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [bench_model(name, args.gen_tokens, args.repeats) for name in args.models.split(",")]
    columns = [
        "model",
        "first_load_s",
        "cached_load_s",
        "prompt_tokens",
        "prompt_tok_per_s",
        "gen_tok_per_s",
        "score_20_shared_s",
        "score_20_naive_s",
        "speedup",
        "max_abs_diff",
    ]
    table = markdown_table(rows, columns, floatfmt=".3g")
    command = "python benchmarks/bench_llm.py " + " ".join(argv if argv is not None else sys.argv[1:])
    notes = (
        "first_load: GGUF dequantisation + conversion into a fresh cache; cached_load: the converted "
        "safetensors folder. prompt_tok_per_s: one forward of the chat prompt. score_20: log-likelihood of "
        "20 candidate titles after that prompt, sharing the prompt's key/value cache vs 20 full forwards; "
        "max_abs_diff compares their scores. Timings are medians of --repeats runs, fp32, CPU; on a shared "
        "machine they vary a lot run to run."
    )
    record(
        "llm_backends",
        "LLM backends: load, throughput, shared-prompt scoring",
        command.strip(),
        table,
        {"rows": rows, "threads": torch.get_num_threads()},
        notes=notes,
    )
    print(table)


if __name__ == "__main__":
    main()
