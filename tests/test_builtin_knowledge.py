"The built-in knowledge base (package data): full coverage of the paper's 12 datasets, 5 distinct, non-template descriptions per class."
import itertools, json, re
from importlib.resources import files

import pytest

# Class names of the 12 datasets (dataset folder names; brainmri and br35h share "brain").
DATASET_CLASSES = {
    "mvtec": "bottle cable capsule carpet grid hazelnut leather metal_nut pill screw tile toothbrush transistor wood zipper",
    "visa": "candle capsules cashew chewinggum fryum macaroni1 macaroni2 pcb1 pcb2 pcb3 pcb4 pipe_fryum",
    "mpdd": "bracket_black bracket_brown bracket_white connector metal_plate tubes",
    "btad": "01 02 03",
    "sdd": "electrical_commutator",
    "dagm": " ".join(f"Class{i}" for i in range(1, 11)),
    "brainmri": "brain", "liverct": "liver", "resc": "retina", "br35h": "brain", "covid19": "chest", "headct": "head",
}
CLASSES = sorted({c for cs in DATASET_CLASSES.values() for c in cs.split()})
N_LLM = 5
STOP = set("a an the of on in at to by as or and with from its it is are be can may might this that than their "
           "there where one two some part parts other others abnormal image show shows appear appears look looks".split())


@pytest.fixture(scope="module")
def kb():
    path = files("kanoclip") / "assets" / "knowledge_builtin.json"
    return json.loads(path.read_text(encoding="utf-8"))


def class_words(name):
    "Words of a class name: 'metal_nut' -> {metal, nut}, 'Class1' -> {class, 1}, 'pcb3' -> {pcb, 3}."
    s = re.sub(r"(?<=[A-Za-z])(?=\d)", " ", name.replace("_", " "))
    return set(s.lower().split())


def skeleton(sentence, name):
    "The sentence as lower-case words without the class-name words and numbers: what a template would share."
    words = re.findall(r"[a-z]+|\d+", sentence.lower())
    drop = class_words(name)
    return tuple(w for w in words if w not in drop and not w.isdigit())


def test_format(kb):
    assert set(kb) == {"version", "classes", "images", "meta"}
    assert kb["version"] == 1
    assert kb["images"] == {}
    assert isinstance(kb["meta"], dict) and kb["meta"]["source"] == "written by the kanoclip developers"
    for cls, entry in kb["classes"].items():
        assert set(entry) == {"llm"}, cls
        assert isinstance(entry["llm"], list), cls


def test_covers_every_class(kb):
    assert len(CLASSES) == 52
    missing = sorted(set(CLASSES) - set(kb["classes"]))
    extra = sorted(set(kb["classes"]) - set(CLASSES))
    assert not missing, f"classes without built-in knowledge: {missing}"
    assert not extra, f"unknown classes in the built-in knowledge: {extra}"


def test_five_distinct_sentences(kb):
    for cls in CLASSES:
        llm = kb["classes"][cls]["llm"]
        assert len(llm) == N_LLM, cls
        for s in llm:
            assert isinstance(s, str) and s == s.strip() and len(s.split()) >= 6, (cls, s)
            assert s[0].isupper() and s.endswith("."), (cls, s)
        assert len({s.lower() for s in llm}) == N_LLM, cls
        assert len({skeleton(s, cls) for s in llm}) == N_LLM, cls


def test_no_template_across_classes(kb):
    "Removing the class-name words must not make any two sentences of the whole base equal."
    seen = {}
    for cls in CLASSES:
        for s in kb["classes"][cls]["llm"]:
            sk = skeleton(s, cls)
            assert sk not in seen, f"{cls!r} repeats {seen.get(sk)!r} with only the class swapped: {s!r}"
            seen[sk] = cls


def test_no_near_duplicates(kb):
    "Stronger than exact repeats: no two sentences share most of their content words (Jaccard < 0.5)."
    items = [(cls, s, set(skeleton(s, cls)) - STOP) for cls in CLASSES for s in kb["classes"][cls]["llm"]]
    worst = max(((len(a & b) / len(a | b), c1, s1, c2, s2)
                 for (c1, s1, a), (c2, s2, b) in itertools.combinations(items, 2)), key=lambda t: t[0])
    assert worst[0] < 0.5, f"near-duplicate descriptions: {worst}"


def test_loader_agrees(kb):
    "Where kanoclip.knowledge provides the loader and validator, they accept this file unchanged."
    knowledge = pytest.importorskip("kanoclip.knowledge")
    if not hasattr(knowledge, "builtin_knowledge"): pytest.skip("kanoclip.knowledge.builtin_knowledge not there yet")
    loaded = knowledge.builtin_knowledge()
    assert loaded["classes"] == kb["classes"]
    if hasattr(knowledge, "validate_knowledge"): knowledge.validate_knowledge(kb, source="knowledge_builtin.json")
