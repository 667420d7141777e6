"""OpenAICompatibleLM against a local stub of an OpenAI-compatible server on 127.0.0.1.

The stub speaks the vLLM wire format (chat and completions answers, ``usage``, echo log-probs
with ``text_offset``) and can fail, throttle or stall on request, so the client's retries,
timeouts, cache and key handling are tested over real sockets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from llmrec.llm import AmbiguousOptionsError, LanguageModel, LLMError
from llmrec.llm.http import MalformedResponseError, OpenAICompatibleLM, RedirectRefusedError, ServerError

SECRET = "sk-test-9f8e7d6c5b4a"
TOKEN_RE = re.compile(r"\s*\S+|\s+")


def stub_tokens(text: str) -> list[str]:
    """The stub's tokenizer: words with their leading whitespace."""
    return TOKEN_RE.findall(text)


def stub_logprob(token: str, position: int) -> float:
    """A deterministic, token-dependent log-prob so sums can be checked independently."""
    return -0.1 * len(token) - 0.01 * position


class Stub:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_next = 0  # answer this many requests with HTTP 500 first
        self.fail_status = 500
        self.sleep = 0.0  # stall every request this long
        self.echo_supported = True
        self.redirect_to: str | None = None  # answer every POST with a 302 to this URL
        self.echo_headers = False  # error bodies repeat the request's headers, as some proxies do
        self.override: dict = {}  # top-level fields replacing those of a chat answer
        self.raw_body: bytes | None = None  # answer 200 with exactly these bytes


def make_handler(stub: Stub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):
            # urllib turns a redirected POST into a GET: answer it like a chat request, so a client
            # that followed a redirect to this host would accept the answer.
            stub.requests.append({"path": self.path, "headers": dict(self.headers), "body": None})
            return self._send(200, {"choices": [{"index": 0, "message": {"content": "from elsewhere"}}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            stub.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if stub.sleep:
                time.sleep(stub.sleep)
            if stub.redirect_to:
                self.send_response(302)
                self.send_header("Location", stub.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if stub.fail_next > 0:
                stub.fail_next -= 1
                error = {"message": "server overloaded"}
                if stub.echo_headers:  # first, so that it falls within the client's shortened quote
                    error = {"you_sent": self.headers.get("Authorization"), **error}
                return self._send(stub.fail_status, {"error": error})
            if stub.raw_body is not None:
                return self._send_bytes(200, stub.raw_body)
            if self.path == "/v1/chat/completions":
                last = body["messages"][-1]["content"]
                text = f"echo: {last}"[: body.get("max_tokens", 256)]
                return self._send(
                    200,
                    {
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                        "usage": {
                            "prompt_tokens": len(stub_tokens(last)) + 3,
                            "completion_tokens": len(stub_tokens(text)),
                        },
                        **stub.override,
                    },
                )
            if self.path == "/v1/completions":
                prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
                if body.get("echo"):
                    if not stub.echo_supported:
                        return self._send(400, {"error": {"message": "echo is not supported"}})
                    return self._send(200, self._echo(prompts))
                return self._send(
                    200,
                    {
                        "choices": [{"index": i, "text": " done"} for i in range(len(prompts))],
                        "usage": {
                            "prompt_tokens": sum(len(stub_tokens(p)) for p in prompts),
                            "completion_tokens": 1,
                        },
                    },
                )
            return self._send(404, {"error": "not found"})

        def _echo(self, prompts):
            choices, total = [], 0
            for i, prompt in enumerate(prompts):
                tokens = [*stub_tokens(prompt), "<gen>"]  # echoed prompt + one generated token
                offsets, pos = [], 0
                for tok in tokens:
                    offsets.append(pos)
                    pos += len(tok)
                values = [None] + [stub_logprob(t, k) for k, t in enumerate(tokens)][1:]
                choices.append(
                    {
                        "index": i,
                        "text": prompt + "<gen>",
                        "logprobs": {
                            "tokens": tokens,
                            "token_logprobs": values,
                            "text_offset": offsets,
                            "top_logprobs": None,
                        },
                    }
                )
                total += len(tokens) - 1
            return {"choices": choices, "usage": {"prompt_tokens": total, "completion_tokens": len(prompts)}}

        def _send(self, status, payload):
            return self._send_bytes(status, json.dumps(payload).encode())

        def _send_bytes(self, status, data):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The timeout test hangs up on a stalled answer on purpose; that broken pipe is expected.
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve():
    """A stub server on 127.0.0.1 (its own port: another "host" for the client), stopped on exit."""
    stub = Stub()
    httpd = QuietServer(("127.0.0.1", 0), make_handler(stub))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stub.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield stub
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server():
    with serve() as stub:
        yield stub


@pytest.fixture
def other_server():
    with serve() as stub:
        yield stub


def client(stub, **kw):
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5.0)
    return OpenAICompatibleLM("stub-model", stub.base_url, **kw)


def test_satisfies_protocol(server):
    assert isinstance(client(server), LanguageModel)


def test_chat_generation_and_accounting(server):
    lm = client(server, price_per_1k_prompt=1.0, price_per_1k_completion=2.0)
    gens = lm.generate(
        ["hello there", [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]],
        max_new_tokens=50,
        stop=["\n"],
    )
    assert [g.text for g in gens] == ["echo: hello there", "echo: hi"]
    sent = sorted((r["body"] for r in server.requests), key=lambda b: len(b["messages"]))
    assert sent[0]["messages"] == [{"role": "user", "content": "hello there"}]  # str -> one user turn
    assert sent[1]["messages"][0] == {"role": "system", "content": "be brief"}
    assert all(b["stop"] == ["\n"] and b["max_tokens"] == 50 and b["model"] == "stub-model" for b in sent)
    assert lm.usage.requests == 2
    assert lm.usage.prompt_tokens == sum(g.prompt_tokens for g in gens) == (2 + 3) + (1 + 3)
    assert lm.usage.completion_tokens == 3 + 2
    assert lm.usage.cost_usd == pytest.approx((9 * 1.0 + 5 * 2.0) / 1000)


def test_cache_hit_makes_no_request(server, tmp_path):
    lm = client(server, cache=tmp_path / "responses.db")
    first = lm.generate(["what next?"], max_new_tokens=20)
    second = lm.generate(["what next?"], max_new_tokens=20)
    assert len(server.requests) == 1
    assert second[0].text == first[0].text and second[0].cached and not first[0].cached
    assert lm.usage.cache_hits == 1 and lm.usage.requests == 1
    # A new client on the same file (a rerun) also hits; other parameters miss.
    again = client(server, cache=tmp_path / "responses.db")
    assert again.generate(["what next?"], max_new_tokens=20)[0].cached
    again.generate(["what next?"], max_new_tokens=21)
    assert len(server.requests) == 2
    # Sampled answers are never served from the cache.
    again.generate(["what next?"], max_new_tokens=20, temperature=0.7)
    assert len(server.requests) == 3


def test_retries_server_errors_then_succeeds(server):
    server.fail_next = 2
    lm = client(server, max_retries=3)
    assert lm.generate(["retry me"], max_new_tokens=30)[0].text == "echo: retry me"
    assert len(server.requests) == 3


def test_retries_are_bounded(server):
    server.fail_next = 10
    server.fail_status = 503
    lm = client(server, max_retries=2)
    with pytest.raises(LLMError, match=r"no answer after 3 attempt\(s\).*HTTP 503"):
        lm.generate(["never"], max_new_tokens=5)
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(server):
    lm = client(server)
    with pytest.raises(LLMError, match="HTTP 404"):
        lm._post("/nowhere", {})
    assert len(server.requests) == 1


def test_timeout_gives_clear_error_after_bounded_retries(server):
    server.sleep = 1.0
    lm = client(server, timeout=0.2, max_retries=1)
    started = time.perf_counter()
    with pytest.raises(LLMError, match=r"no answer after 2 attempt\(s\); last error: timed out after 0.2 s"):
        lm.generate(["slow"], max_new_tokens=5)
    assert time.perf_counter() - started < 3.0
    assert len(server.requests) == 2


def test_connection_refused_is_retried_and_reported():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lm = OpenAICompatibleLM("m", f"http://127.0.0.1:{port}/v1", max_retries=1, backoff=0.01, timeout=2)
    with pytest.raises(LLMError, match="no answer after 2 attempt.*connection failed"):
        lm.generate(["x"])


def test_api_key_sent_as_bearer_but_never_exposed(server, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MY_LLM_KEY", SECRET)
    server.fail_next = 1  # make the client log a retry warning too
    lm = client(server, api_key_env="MY_LLM_KEY", cache=tmp_path / "c.db")
    with caplog.at_level(logging.DEBUG):
        lm.generate(["secret test"], max_new_tokens=5)
    assert server.requests[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(lm) and SECRET not in str(vars(lm))
    assert SECRET not in caplog.text and "retry 1" in caplog.text
    assert SECRET.encode() not in (tmp_path / "c.db").read_bytes()
    monkeypatch.delenv("MY_LLM_KEY")
    lm.generate(["no key now"], max_new_tokens=5)
    assert "Authorization" not in server.requests[-1]["headers"]


def test_loglikelihood_from_echoed_prompt_logprobs(server):
    lm = client(server)
    prompt = "The user watched Alien and Heat. Next: "
    conts = ["Jaws", "The Matrix Reloaded"]
    scores = lm.loglikelihood(prompt, conts)
    # Independent expectation from the stub's rule: the trailing space moves onto the continuation.
    for cont, score in zip(conts, scores, strict=True):
        tokens = stub_tokens("The user watched Alien and Heat. Next: " + cont)
        n_prompt = len(stub_tokens("The user watched Alien and Heat. Next:"))
        expected = sum(stub_logprob(t, k) for k, t in enumerate(tokens) if k >= n_prompt)
        assert score == pytest.approx(expected)
    body = server.requests[-1]["body"]
    assert body["echo"] is True and body["logprobs"] == 1 and len(body["prompt"]) == 2
    batch = lm.loglikelihood_batch([(prompt, conts), ("Next:", [" Jaws"])])
    assert np.allclose(batch[0], scores)


def test_next_token_logprobs_and_ambiguity(server):
    lm = client(server)
    values = lm.next_token_logits("Answer:", [" Yes", " No"])
    assert values == pytest.approx([stub_logprob(" Yes", 1), stub_logprob(" No", 1)])
    with pytest.raises(AmbiguousOptionsError, match="both start with token"):
        lm.next_token_logits("Answer:", [" Yes please", " Yes"])


def test_scoring_unsupported_server_says_so(server):
    server.echo_supported = False
    lm = client(server)
    with pytest.raises(NotImplementedError, match="does not score prompts"):
        lm.loglikelihood("Answer:", [" Yes"])
    with pytest.raises(NotImplementedError, match="chat_template_tokenizer"):
        lm.loglikelihood([{"role": "user", "content": "hi"}], ["Yes"])


def test_completions_endpoint_and_token_count_fallback(server):
    lm = client(server, endpoint="completions")
    assert lm.generate(["Complete this"], max_new_tokens=3)[0].text == " done"
    assert server.requests[-1]["path"] == "/v1/completions"
    # The stub has no /tokenize: the count falls back to an estimate once, without retrying.
    n = len(server.requests)
    assert lm.token_count("abcdefgh") == 2 and lm.token_count("abcd") == 1
    assert len(server.requests) == n + 1


# --- hardening: redirects, redaction, cache scope, malformed answers --------------------------------


def test_cross_host_redirect_is_refused_and_the_key_never_leaves(server, other_server, monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", SECRET)
    server.redirect_to = f"{other_server.base_url}/chat/completions"  # another port: another host
    lm = client(server, api_key_env="MY_LLM_KEY", max_retries=0)
    with pytest.raises(RedirectRefusedError, match=r"HTTP 302 redirect to http://127\.0\.0\.1:\d+/v1/chat.*"
                                                   r"another host.*API key") as err:
        lm.generate(["hello"], max_new_tokens=5)
    assert other_server.requests == []  # nothing, and so no key, reached the other host
    assert len(server.requests) == 1 and SECRET not in str(err.value)


def test_same_host_redirect_is_still_followed(server, monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", SECRET)
    server.redirect_to = f"{server.base_url}/moved"
    lm = client(server, api_key_env="MY_LLM_KEY", max_retries=0)
    assert lm.generate(["hello"], max_new_tokens=5)[0].text == "from elsewhere"
    assert server.requests[-1]["path"] == "/v1/moved"


def test_server_text_in_errors_and_logs_is_redacted(server, monkeypatch, caplog):
    monkeypatch.setenv("MY_LLM_KEY", SECRET)
    server.echo_headers = True
    server.fail_next, server.fail_status = 1, 401
    lm = client(server, api_key_env="MY_LLM_KEY", max_retries=1)
    with pytest.raises(ServerError, match="HTTP 401") as err:
        lm.generate(["x"], max_new_tokens=5)
    assert SECRET not in str(err.value) and "[redacted $MY_LLM_KEY]" in str(err.value)
    assert "refused the key from the environment variable MY_LLM_KEY" in str(err.value)
    # 5xx: retried, logged and finally raised; neither the log nor the error holds the key.
    server.fail_next, server.fail_status = 5, 503
    with caplog.at_level(logging.WARNING), pytest.raises(LLMError, match="no answer after 2") as err:
        lm.generate(["y"], max_new_tokens=5)
    assert "retry 1/1" in caplog.text and "redacted" in caplog.text
    assert SECRET not in caplog.text and SECRET not in str(err.value)


def test_unauthorised_without_a_key_names_the_variable(server, monkeypatch):
    monkeypatch.delenv("MY_LLM_KEY", raising=False)
    server.fail_next, server.fail_status = 1, 401
    with pytest.raises(ServerError, match=r"no API key was sent: the environment variable MY_LLM_KEY is not set"):
        client(server, api_key_env="MY_LLM_KEY").generate(["x"], max_new_tokens=5)


def test_cache_is_keyed_on_the_base_url(server, other_server, tmp_path):
    first = client(server, cache=tmp_path / "shared.db")
    second = client(other_server, cache=tmp_path / "shared.db")
    assert not first.generate(["same prompt"], max_new_tokens=20)[0].cached
    answer = second.generate(["same prompt"], max_new_tokens=20)[0]
    assert not answer.cached and len(other_server.requests) == 1  # asked its own server
    assert client(server, cache=tmp_path / "shared.db").generate(["same prompt"], max_new_tokens=20)[0].cached
    from llmrec.llm.cache import cache_key

    assert cache_key("m", "p", {}, base_url="http://a/v1") != cache_key("m", "p", {}, base_url="http://b/v1")
    assert cache_key("m", "p", {}) == cache_key("m", "p", {}, base_url=None)  # local backends unchanged


@pytest.mark.parametrize(("override", "field"), [
    ({"usage": "lots"}, "usage"),
    ({"usage": {"prompt_tokens": "many", "completion_tokens": 1}}, "usage.prompt_tokens"),
    ({"usage": {"prompt_tokens": -3}}, "usage.prompt_tokens"),
    ({"choices": [{"index": 0, "message": {"content": ["a", "list"]}}]}, "choices.0.message.content"),
    ({"choices": "none"}, "choices.0.message.content"),
    ({"choices": []}, "choices.0.message.content"),
])
def test_malformed_answers_are_one_clear_error(server, override, field):
    server.override = override
    lm = client(server, max_retries=0)
    with pytest.raises(MalformedResponseError) as err:
        lm.generate(["x"], max_new_tokens=5)
    url = f"{server.base_url}/chat/completions"
    assert err.value.url == url and err.value.field == field
    assert str(err.value).startswith(f"{url}: malformed answer, field {field!r}: expected")
    assert isinstance(err.value, LLMError) and lm.usage.requests == 0


@pytest.mark.parametrize(("raw", "expected"), [(b"[1, 2]", "a JSON object"), (b"<html>", "JSON")])
def test_a_body_that_is_not_a_json_object_is_named(server, raw, expected):
    server.raw_body = raw
    with pytest.raises(MalformedResponseError, match=rf"field '\(body\)': expected {expected},"):
        client(server, max_retries=0).generate(["x"], max_new_tokens=5)


def test_malformed_echo_logprobs_name_the_field(server):
    server.raw_body = json.dumps({"choices": [{"index": 0, "logprobs": "none"}]}).encode()
    with pytest.raises(MalformedResponseError, match=r"/v1/completions: malformed answer, field 'choices.0.logprobs'"):
        client(server).loglikelihood("Answer:", [" Yes"])
    server.raw_body = json.dumps({"choices": [{"index": 0, "logprobs": {
        "tokens": ["A", " Yes"], "token_logprobs": [None, "high"], "text_offset": [0, 7]}}]}).encode()
    with pytest.raises(MalformedResponseError, match="token_logprobs"):
        client(server).loglikelihood("Answer:", [" Yes"])
