"""Story rules of the built-in corpus: vocabulary, memory slots and the sentence graph.

The story process is a graph of nodes. A node has weighted arcs `(weight, spec, next_node, writes)`:
`spec` is a literal word, `None` (an epsilon arc: jump to `next_node` emitting nothing), or a `$SLOT`
whose word depends on / sets the story memory (the character's name and gender, the object's colour, noun
and number). `grammar.py` compiles the graph x the live memory into a deterministic automaton.

Long-range dependencies: the hero's name recurs and pronouns (he/him/his vs she/her/her) follow the name's
gender; the object is introduced with a number and a colour ("two red balls") and referred to later with the
same colour and noun ("the red balls"), with number agreement ("they were" / "it was", "them" / "it").
"""

SPECIALS = ["[PAD]", "[BOS]", "[EOS]", "[MASK]"]
NAMES = [("Tom", 0), ("Ben", 0), ("Max", 0), ("Lily", 1), ("Mia", 1), ("Anna", 1)]  # (name, gender)
COLOURS = ["red", "blue", "green"]
NOUNS = [("ball", "balls"), ("cat", "cats"), ("kite", "kites"), ("box", "boxes")]
HE, HIM, HIS, CHILD = ("he", "she"), ("him", "her"), ("his", "her"), ("boy", "girl")
IT, BE, ITOBJ = ("it", "they"), ("was", "were"), ("it", "them")

# slot -> (memory fields read, memory fields written)
SLOTS = {
    "$NAME": ({"name"}, set()), "$HE": ({"gender"}, set()), "$HIM": ({"gender"}, set()),
    "$HIS": ({"gender"}, set()), "$CHILD": ({"gender"}, set()), "$COLOUR": ({"colour"}, set()),
    "$NOUN": ({"noun", "num"}, set()), "$IT": ({"num"}, set()), "$BE": ({"num"}, set()),
    "$ITOBJ": ({"num"}, set()), "$SET_NAME": (set(), {"name", "gender"}),
    "$SET_NAME_G": ({"gender"}, {"name"}), "$SET_COLOUR": (set(), {"colour"}),
    "$SET_NOUN": ({"num"}, {"noun"}),
}


def expand_slot(spec: str, mem: dict) -> list:
    """All (word, probability, memory writes) that `spec` can emit given the memory `mem`."""
    if not spec.startswith("$"):
        return [(spec, 1.0, {})]
    g = mem.get("gender")
    if spec == "$NAME":
        return [(NAMES[mem["name"]][0], 1.0, {})]
    if spec in ("$HE", "$HIM", "$HIS", "$CHILD"):
        return [({"$HE": HE, "$HIM": HIM, "$HIS": HIS, "$CHILD": CHILD}[spec][g], 1.0, {})]
    if spec == "$COLOUR":
        return [(COLOURS[mem["colour"]], 1.0, {})]
    if spec == "$NOUN":
        return [(NOUNS[mem["noun"]][mem["num"]], 1.0, {})]
    if spec in ("$IT", "$BE", "$ITOBJ"):
        return [({"$IT": IT, "$BE": BE, "$ITOBJ": ITOBJ}[spec][mem["num"]], 1.0, {})]
    if spec == "$SET_NAME":
        return [(w, 1.0 / len(NAMES), {"name": i, "gender": gi}) for i, (w, gi) in enumerate(NAMES)]
    if spec == "$SET_NAME_G":
        ids = [i for i, (_, gi) in enumerate(NAMES) if gi == g]
        return [(NAMES[i][0], 1.0 / len(ids), {"name": i}) for i in ids]
    if spec == "$SET_COLOUR":
        return [(w, 1.0 / len(COLOURS), {"colour": i}) for i, w in enumerate(COLOURS)]
    if spec == "$SET_NOUN":
        return [(n[mem["num"]], 1.0 / len(NOUNS), {"noun": i}) for i, n in enumerate(NOUNS)]
    raise KeyError(spec)


def _words(words, nxt, total=1.0, weights=None):
    """Arcs choosing one of `words` (uniform unless `weights`), all going to `nxt`, with total weight."""
    w = weights or [1.0] * len(words)
    return [(total * wi / sum(w), word, nxt, {}) for word, wi in zip(words, w)]


def _seq(name, words, nxt, graph):
    """Fixed word sequence starting at node `name`, ending at `nxt`."""
    for i, word in enumerate(words):
        target = nxt if i == len(words) - 1 else f"{name}.{i + 1}"
        graph[name if i == 0 else f"{name}.{i}"] = [(1.0, word, target, {})]


CHILD_ADJ = ("little young kind brave happy shy small clever funny quiet tall gentle curious silly friendly "
             "lazy busy lucky smart sweet tiny bold polite cheerful wise strong cute nice loud calm good "
             "careful playful merry clumsy").split()
FEELINGS = ("happy sad tired excited hungry scared glad angry sleepy proud cold bored calm upset worried "
            "sorry surprised lonely thirsty nervous grumpy cheerful silly busy warm sick hot brave shy "
            "curious jealous afraid thankful confused ready free").split()
THING_ADJ = ("big small soft old new pretty dirty funny fast loud shiny heavy light clean wet warm round tiny "
             "strange noisy fluffy cute nice lovely huge broken sticky smooth bright dark tall long short "
             "hard cold quiet").split()
PLACES = ("park forest beach lake farm garden river shop school hill zoo city market pond woods castle cave "
          "field library playground town bridge meadow kitchen village island jungle desert mountain "
          "station bakery museum street barn yard").split()
OBJ_VERBS = ("liked took held hugged lost loved washed fed hid carried showed kept found painted dropped chased "
             "watched pushed pulled caught threw kicked shared cleaned fixed touched needed grabbed "
             "followed picked called named counted brushed wrapped").split()
MOVE_VERBS = "went ran walked hurried rode raced wandered skipped drove climbed swam flew".split()
INTRANS = ("smiled laughed jumped sang danced slept cried waved clapped shouted sat rested waited giggled "
           "sneezed yawned hummed whistled nodded ate read cooked listened hopped stayed").split()
ADVERBS = ("today again quietly loudly slowly quickly happily outside together alone too yesterday there "
           "inside away home softly gladly carefully daily now first nearby proudly fast twice early late "
           "indoors upstairs downstairs once").split()
RELATIVES = "mom dad friend grandma grandpa sister brother teacher uncle aunt neighbour cousin".split()
ITEMS = ("cake book cookie hat toy flower hug song kiss gift drum map coat shell sticker bell balloon card "
         "sandwich puzzle blanket cup pie sock scarf lamp doll ring letter robot pear bowl").split()
INTENS = ["very", "so", "really"]
PREPS = "to into through across past near around behind".split()


def build_graph() -> dict:
    """node name -> list of arcs (weight, spec | None, next node, writes). Entry 'DOC' follows [BOS]."""
    g: dict = {"EXPECT_BOS": [(1.0, "[BOS]", "DOC", {})]}
    # sentence 1: introduces the hero (name and gender)
    g["DOC"] = [(0.1, "once", "ONCE", {}), (0.3, "there", "THERE", {}), (0.15, "long", "LONG", {}),
                (0.45, "$SET_NAME", "NWAS", {})]
    _seq("ONCE", ["upon", "a", "time", ","], "TW", g)
    _seq("LONG", ["ago", ","], "TW", g)
    _seq("TW", ["there"], "THERE", g)
    g["THERE"] = _words(["was", "lived"], "A", weights=[3, 2])
    _seq("A", ["a"], "IADJ", g)
    g["IADJ"] = _words(CHILD_ADJ, "ICHILD")
    g["ICHILD"] = [(0.5, "boy", "NAMED", {"gender": 0}), (0.5, "girl", "NAMED", {"gender": 1})]
    g["NAMED"] = _words(["named", "called"], "SNAME", weights=[2, 1])
    g["SNAME"] = [(1.0, "$SET_NAME_G", "IDOT", {})]
    _seq("NWAS", ["was", "a"], "NADJ", g)
    g["NADJ"] = _words(CHILD_ADJ, "NCHILD")
    g["NCHILD"] = [(1.0, "$CHILD", "IDOT", {})]
    _seq("IDOT", ["."], "OBJ", g)
    # sentence 2: introduces the object (number, colour, noun)
    g["OBJ"] = [(0.4, "one", "ODAY", {}), (0.6, None, "OSUBJ", {})]
    g["ODAY"] = _words(["day", "morning", "evening", "night"], "OCOMMA", weights=[4, 3, 2, 1])
    _seq("OCOMMA", [","], "OSUBJ", g)
    g["OSUBJ"] = [(0.5, "$NAME", "OVERB", {}), (0.5, "$HE", "OVERB", {})]
    g["OVERB"] = _words("found saw had got wanted made bought won drew owned".split(), "ODET")
    g["ODET"] = [(0.5, "a", "OCOL", {"num": 0})] + [
        (w, word, "OCOL", {"num": 1}) for word, w in zip(["two", "three", "four", "some"], [0.2, 0.12, 0.08, 0.1])]
    no_vowel = [w for w in THING_ADJ if w[0] not in "aeiou"]  # they follow "a"
    g["OCOL"] = [(0.5, "$SET_COLOUR", "ONOUN", {})] + _words(no_vowel, "OCOL2", 0.5)
    g["OCOL2"] = [(1.0, "$SET_COLOUR", "ONOUN", {})]
    g["ONOUN"] = [(1.0, "$SET_NOUN", "OEND", {})]
    g["OEND"] = [(0.6, ".", "MS", {})] + _words(["in", "at", "near", "behind"], "OIN", 0.4, [3, 2, 1, 1])
    _seq("OIN", ["the"], "OPLACE", g)
    g["OPLACE"] = _words(PLACES, "DOT0")
    _seq("DOT0", ["."], "MS", g)
    # middle sentences (at least one), then the ending
    g["MID"] = [(0.65, None, "MS", {}), (0.35, None, "END", {})]
    g["MS"] = ([(0.2, "$NAME", "PV", {}), (0.2, "$HE", "PV", {}), (0.14, "the", "TC", {}),
                (0.12, "$IT", "TB", {}), (0.18, "$HIS", "REL", {})]
               + _words("then next suddenly soon later".split(), "PSUBJ", 0.16))
    g["PSUBJ"] = [(0.5, "$NAME", "PV", {}), (0.5, "$HE", "PV", {})]
    g["PV"] = (_words(OBJ_VERBS, "OBJREF", 0.35) + _words(MOVE_VERBS, "PREP", 0.2)
               + _words(["was", "felt"], "PADJ", 0.2) + [(0.08, "played", "AP", {})] + _words(INTRANS, "ADVP", 0.17))
    g["PREP"] = _words(PREPS, "THE", weights=[4] + [1] * (len(PREPS) - 1))
    _seq("THE", ["the"], "PLACE", g)
    g["PLACE"] = _words(PLACES, "AP")
    g["AP"] = ([(0.35, ".", "MID", {}), (0.25, "with", "OBJREF", {}), (0.1, "and", "PV", {})]
               + _words(ADVERBS, "DOT", 0.3))
    g["ADV"] = [(0.4, ".", "MID", {})] + _words(ADVERBS, "DOT", 0.6)
    g["ADVP"] = [(0.4, ".", "MID", {}), (0.15, "and", "PV", {})] + _words(ADVERBS, "DOT", 0.45)
    g["OBJREF"] = [(0.5, "the", "RC", {}), (0.2, "$HIS", "RC", {}), (0.3, "$ITOBJ", "ADVP", {})]
    g["RC"] = [(0.5, "$COLOUR", "RN", {})] + _words(THING_ADJ, "RC2", 0.5)
    g["RC2"] = [(1.0, "$COLOUR", "RN", {})]
    g["RN"] = [(1.0, "$NOUN", "ADVP", {})]
    g["PADJ"] = _words(INTENS, "PADJ2", 0.4) + _words(FEELINGS, "ADVP", 0.6)
    g["PADJ2"] = _words(FEELINGS, "ADVP")
    g["TC"] = [(0.5, "$COLOUR", "TN", {})] + _words(THING_ADJ, "TC2", 0.5)
    g["TC2"] = [(1.0, "$COLOUR", "TN", {})]
    g["TN"] = [(1.0, "$NOUN", "TB", {})]
    g["TB"] = [(1.0, "$BE", "TADJ", {})]
    g["TADJ"] = _words(INTENS, "TADJ2", 0.4) + _words(THING_ADJ, "ADV", 0.6)
    g["TADJ2"] = _words(THING_ADJ, "ADV")
    g["REL"] = _words(RELATIVES, "RV")
    g["RV"] = (_words("gave made bought brought sent".split(), "GAVE", 0.4)
               + _words(["liked", "saw"], "OBJREF", 0.2) + _words(["was", "felt"], "PADJ", 0.2)
               + _words(INTRANS[:10], "ADV", 0.2))
    g["GAVE"] = [(1.0, "$HIM", "GA", {})]
    g["GA"] = _words(["a", "another"], "ITEM", weights=[3, 1])
    g["ITEM"] = _words(ITEMS, "ADVP")
    _seq("DOT", ["."], "MID", g)
    # ending sentence, then [EOS]
    g["END"] = _words("finally afterwards eventually".split(), "ESUBJ")
    g["ESUBJ"] = [(0.5, "$NAME", "EV", {}), (0.5, "$HE", "EV", {})]
    g["EV"] = (_words(["was", "felt"], "EADJ", 0.35) + _words(["loved", "missed", "kept"], "ETHE", 0.3)
               + _words(INTRANS, "EDOT", 0.35))
    g["EADJ"] = _words(INTENS, "EADJ2", 0.3) + _words(FEELINGS, "EDOT", 0.7)
    g["EADJ2"] = _words(FEELINGS, "EDOT")
    _seq("ETHE", ["the"], "ECOL", g)
    g["ECOL"] = [(1.0, "$COLOUR", "ENOUN", {})]
    g["ENOUN"] = [(1.0, "$NOUN", "EDOT", {})]
    _seq("EDOT", [".", "[EOS]"], "EXPECT_BOS", g)
    return g


def vocabulary() -> list:
    """Specials first (PAD=0, BOS=1, EOS=2, MASK=3), then every word the graph can emit, sorted."""
    words = {n for n, _ in NAMES} | set(COLOURS) | {w for pair in NOUNS for w in pair}
    words |= set(HE + HIM + HIS + CHILD + IT + BE + ITOBJ)
    for arcs in build_graph().values():
        words |= {spec for _, spec, _, _ in arcs if spec is not None and not spec.startswith("$")}
    return SPECIALS + sorted(words - set(SPECIALS))
