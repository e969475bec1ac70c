"The chat-completions client and the resumable knowledge-base build, against a real HTTP server on 127.0.0.1."
import base64, json, logging, multiprocessing, re, signal, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from kanoclip.chat import ChatClient, EndpointError, MalformedAnswer, describe_class, describe_image, LLM_TEMPLATE, VQA_TEMPLATE
from kanoclip.describe import IncompleteKnowledge, build_knowledge
from kanoclip.knowledge import load_knowledge

KEY = "sk-test-SECRET-0123456789"
FIVE = ["The bottle has a crack along the neck.", "A chipped rim with missing glass.",
        "Dark dirt stuck to the inner base.", "Scratches that dull the glass surface.",
        "A deformed bottom that makes the bottle wobble."]


def ok(text):
    "A well-formed chat-completions answer carrying `text`."
    return 200, {"id": "x", "object": "chat.completion",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


def numbered(cls, n=5):
    return "\n".join(f"{i + 1}. An abnormal {cls} with defect number {i + 1} on it." for i in range(n))


def asked_class(body):
    "The class a request asks about (LLM question)."
    return re.match(r"Describe what an abnormal image of (.+?) looks like\?", body["messages"][0]["content"]).group(1)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        srv = self.server.owner
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            i = len(srv.requests)
            srv.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status, payload, *rest = srv.reply(i, body)
        headers, delay = (rest + [{}, 0])[:2] if rest else ({}, 0)
        if delay: time.sleep(delay)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            for k, v in headers.items(): self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError: pass  # the client gave up (timeout test)

    def log_message(self, *args): pass


class Server:
    "Chat-completions server on an ephemeral port; `reply(i, body)` -> (status, payload[, headers[, delay]])."
    def __init__(self, reply):
        self.reply, self.requests, self.lock = reply, [], threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def client(self, **kw):
        return ChatClient(**{"base_url": self.url, "model": "test-model", "api_key": KEY, "timeout": 2.0,
                             "retries": 3, "backoff": 0.01, **kw})

    def close(self): self.httpd.shutdown(); self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []
    def make(reply):
        servers.append(Server(reply)); return servers[-1]
    yield make
    for s in servers: s.close()


# --- answers ---------------------------------------------------------------------------------------------------

def test_normal_answer_and_request(serve):
    srv = serve(lambda i, body: ok("\n".join(FIVE)))
    got = describe_class(srv.client(), "metal_nut", 5)
    assert got == FIVE
    (req,) = srv.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {KEY}"
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["body"]["model"] == "test-model"
    assert req["body"]["messages"][0]["role"] == "user"
    assert req["body"]["messages"][0]["content"].startswith(LLM_TEMPLATE.format(cls="metal nut") + " Give 5 ")


@pytest.mark.parametrize("style", ["1. {}", "{n}) {}", "({n}) {}", "- {}", "* {}", "• {}", "**{n}.** {}", "{}"])
def test_list_styles(serve, style):
    text = "Here are five descriptions:\n\n" + "\n".join(
        style.replace("{n}", str(i + 1)).format(f"**{s}**" if i == 0 else s) for i, s in enumerate(FIVE))
    srv = serve(lambda i, body: ok(text + ("\n\nLet me know if you need more!" if style != "{}" else "")))
    assert describe_class(srv.client(), "bottle", 5) == FIVE


def test_429_then_success_honours_retry_after(serve):
    replies = [(429, {"error": "slow down"}, {"Retry-After": "5"}), ok("\n".join(FIVE))]
    srv = serve(lambda i, body: replies[i])
    t = time.monotonic()
    assert describe_class(srv.client(max_delay=0.3), "bottle", 5) == FIVE
    assert len(srv.requests) == 2
    assert time.monotonic() - t >= 0.29  # waited Retry-After (capped at max_delay), not the 0.01 s backoff


def test_500_retried_then_success(serve):
    srv = serve(lambda i, body: (500, {"error": "boom"}) if i < 2 else ok("\n".join(FIVE)))
    assert describe_class(srv.client(), "bottle", 5) == FIVE
    assert len(srv.requests) == 3


def test_500_gives_up_clearly(serve):
    srv = serve(lambda i, body: (500, {"error": "boom"}))
    with pytest.raises(EndpointError, match=r"llm endpoint http://127\.0\.0\.1:\d+/v1/chat/completions: HTTP 500 "
                                            r".*gave up after 4 attempts") as e:
        describe_class(srv.client(retries=3), "bottle", 5)
    assert e.value.status == 500 and len(srv.requests) == 4


def test_other_4xx_fail_at_once_without_the_key(serve):
    srv = serve(lambda i, body: (401, {"error": f"invalid api key {KEY}"}))
    with pytest.raises(EndpointError, match="HTTP 401") as e:
        describe_class(srv.client(), "bottle", 5)
    assert len(srv.requests) == 1
    assert KEY not in str(e.value) and "***" in str(e.value)


def test_timeout_retried_then_gives_up(serve):
    srv = serve(lambda i, body: ok("\n".join(FIVE)) + ({}, 0.5) if i == 0 else ok("\n".join(FIVE)))
    assert describe_class(srv.client(timeout=0.2), "bottle", 5) == FIVE
    assert len(srv.requests) == 2
    slow = serve(lambda i, body: ok("\n".join(FIVE)) + ({}, 0.5))
    with pytest.raises(EndpointError, match="timed out .gave up after 2 attempts"):
        describe_class(slow.client(timeout=0.2, retries=1), "bottle", 5)
    assert len(slow.requests) == 2


def test_malformed_answers_name_the_class(serve):
    replies = {0: (200, b"this is not json{"), 1: (200, {"choices": []}), 2: ok("1. Only one description here.\n2. And a second one.")}
    srv = serve(lambda i, body: replies[i])
    with pytest.raises(MalformedAnswer, match="class 'bottle': .*not valid JSON"): describe_class(srv.client(), "bottle")
    with pytest.raises(MalformedAnswer, match="class 'cable': .*no choices"): describe_class(srv.client(), "cable")
    with pytest.raises(MalformedAnswer, match="class 'grid': asked for 5 descriptions, the answer has 2"):
        describe_class(srv.client(), "grid")
    assert len(srv.requests) == 3  # malformed answers are not retried


def test_image_request_carries_a_data_url(serve, tmp_path):
    img = tmp_path / "000.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(img)
    srv = serve(lambda i, body: ok("A small dark scratch in the upper left of the bottle."))
    assert describe_image(srv.client(kind="vqa"), img, "bottle") == ["A small dark scratch in the upper left of the bottle."]
    text, image = srv.requests[0]["body"]["messages"][0]["content"]
    assert text["type"] == "text" and text["text"].startswith(VQA_TEMPLATE.format(cls="bottle"))
    assert image["type"] == "image_url"
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == img.read_bytes()


# --- building a knowledge base ---------------------------------------------------------------------------------

def make_samples(root, n=2):
    "n anomalous images of class 'bottle' with masks, and one normal image."
    samples = []
    for i in range(n):
        (root / "bottle/test/crack").mkdir(parents=True, exist_ok=True)
        (root / "bottle/ground_truth/crack").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(root / f"bottle/test/crack/{i:03d}.png")
        m = np.zeros((32, 32), np.uint8); m[2:5, 2:30] = 255
        Image.fromarray(m).save(root / f"bottle/ground_truth/crack/{i:03d}_mask.png")
        samples.append({"img_path": f"bottle/test/crack/{i:03d}.png", "mask_path": f"bottle/ground_truth/crack/{i:03d}_mask.png",
                        "cls_name": "bottle", "specie_name": "crack", "anomaly": 1})
    samples.append({"img_path": "bottle/test/good/000.png", "mask_path": "", "cls_name": "bottle", "specie_name": "good", "anomaly": 0})
    return samples


def test_build_with_endpoints_never_stores_the_key(serve, tmp_path, caplog, capsys):
    samples = make_samples(tmp_path)
    llm = serve(lambda i, body: (429, {}, {"Retry-After": "0"}) if i == 0 else ok(numbered(asked_class(body))))
    vqa = serve(lambda i, body: ok("A thin bright crack at the top of the bottle."))
    out = tmp_path / "kb.json"
    with caplog.at_level(logging.DEBUG):
        kb = build_knowledge(out, ["cable"], images=samples, root=tmp_path, llm=llm.client(),
                             vqa=vqa.client(kind="vqa"), progress=True)
    assert set(kb["classes"]) == {"cable", "bottle"}
    assert kb["classes"]["cable"]["llm"][4] == "An abnormal cable with defect number 5 on it."
    assert set(kb["images"]) == {"bottle/test/crack/000.png", "bottle/test/crack/001.png"}  # normal image not asked
    assert len(vqa.requests) == 2
    assert all(m["headers"]["Authorization"] == f"Bearer {KEY}" for m in llm.requests + vqa.requests)
    meta = kb["meta"]
    assert meta["llm"]["model"] == "test-model" and meta["llm"]["endpoint"] == llm.url + "/chat/completions"
    assert meta["llm"]["template"] == LLM_TEMPLATE and meta["vqa"]["template"] == VQA_TEMPLATE
    assert "retry 1/3" in caplog.text
    text = out.read_text()
    for where in (text, caplog.text, *capsys.readouterr()):
        assert KEY not in where
    assert load_knowledge(out) == kb


def test_malformed_answer_reported_then_retried_on_rerun(serve, tmp_path):
    bad = {"grid"}
    def reply(i, body):
        c = asked_class(body)
        return (200, b"<html>oops") if c in bad else ok(numbered(c))
    srv = serve(reply)
    out = tmp_path / "kb.json"
    with pytest.raises(IncompleteKnowledge, match=r"kb.json: 1 item\(s\) got no descriptions .*class 'grid': .*not valid JSON"):
        build_knowledge(out, ["bottle", "grid", "tile"], llm=srv.client(), progress=False)
    kb = load_knowledge(out)
    assert set(kb["classes"]) == {"bottle", "tile"}
    assert kb["meta"]["problems"][0].startswith("class 'grid'")
    bad.clear()
    kb = build_knowledge(out, ["bottle", "grid", "tile"], llm=srv.client(), progress=False)
    assert [asked_class(r["body"]) for r in srv.requests] == ["bottle", "grid", "tile", "grid"]
    assert set(kb["classes"]) == {"bottle", "grid", "tile"} and kb["meta"]["problems"] == []
    assert build_knowledge(out, ["bottle", "grid", "tile"], llm=srv.client(), progress=False) == kb
    assert len(srv.requests) == 4  # all done: nothing asked


def test_server_failing_hard_after_k_answers_then_resume(serve, tmp_path):
    classes = ["bottle", "cable", "capsule", "carpet", "grid", "hazelnut"]
    broken = serve(lambda i, body: ok(numbered(asked_class(body))) if i < 3 else (503, {"error": "down"}))
    out = tmp_path / "kb.json"
    with pytest.raises(EndpointError, match="HTTP 503 .*gave up after 2 attempts.*while describing class .carpet."):
        build_knowledge(out, classes, llm=broken.client(retries=1), progress=False)
    assert list(load_knowledge(out)["classes"]) == classes[:3]
    healthy = serve(lambda i, body: ok(numbered(asked_class(body))))
    kb = build_knowledge(out, classes, llm=healthy.client(), progress=False)
    assert [asked_class(r["body"]) for r in healthy.requests] == classes[3:]
    assert list(kb["classes"]) == classes and all(len(e["llm"]) == 5 for e in kb["classes"].values())


def _killed_run(out, url, classes):
    "The build in a child process (forked: no second import of torch), to be killed with SIGKILL."
    build_knowledge(out, classes, llm=dict(base_url=url, model="test-model", api_key=KEY, backoff=0.01), progress=False)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_run_killed_halfway_then_resumed(serve, tmp_path):
    classes = ["bottle", "cable", "capsule", "carpet", "grid", "hazelnut"]
    hang = threading.Event()
    def reply(i, body):
        if i < 3: return ok(numbered(asked_class(body)))
        hang.set(); return ok(numbered(asked_class(body))) + ({}, 5.0)  # the 4th answer never arrives in time
    srv = serve(reply)
    out = tmp_path / "kb.json"
    proc = multiprocessing.get_context("fork").Process(target=_killed_run, args=(out, srv.url, classes), daemon=True)
    proc.start()
    try: assert hang.wait(30), "the build never reached the 4th request"
    finally: proc.kill(); proc.join(10)                       # SIGKILL: no cleanup code runs
    assert proc.exitcode == -signal.SIGKILL
    kb = load_knowledge(out)                                  # a complete, valid file
    assert list(kb["classes"]) == classes[:3]
    done = {c: kb["classes"][c]["llm"] for c in classes[:3]}
    healthy = serve(lambda i, body: ok(numbered(asked_class(body))))
    kb = build_knowledge(out, classes, llm=healthy.client(), progress=False)
    assert [asked_class(r["body"]) for r in healthy.requests] == classes[3:]   # done items not requested again
    assert list(kb["classes"]) == classes                                      # nothing lost, no duplicates
    assert {c: kb["classes"][c]["llm"] for c in classes[:3]} == done
    assert all(len(set(e["llm"])) == 5 for e in kb["classes"].values())
    assert KEY not in out.read_text()


def test_client_from_environment(serve, monkeypatch):
    srv = serve(lambda i, body: ok("\n".join(FIVE)))
    for k in ("KANOCLIP_LLM_API_KEY", "KANOCLIP_API_KEY"): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("KANOCLIP_LLM_URL", srv.url)
    monkeypatch.setenv("KANOCLIP_LLM_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    c = ChatClient.from_env("llm", backoff=0.01)
    assert describe_class(c, "bottle") == FIVE
    assert srv.requests[0]["headers"]["Authorization"] == "Bearer sk-from-env"
    assert srv.requests[0]["body"]["model"] == "env-model"
    assert "sk-from-env" not in repr(c)
