"""Built-in corpus: a seeded story generator compiled to an exact, deterministic probabilistic automaton.

The story graph (`grammar_rules.py`) x the live part of the story memory (liveness analysis drops memory
that no later word reads) is compiled into a *deterministic* probabilistic finite automaton:
`next_state[S, V]` and `emit_logp[S, V]`. In state s the next token has probability

    p(v | s) = (1 - noise) * g(v | s) + noise / V'        (V' = V - 2: every id except PAD and MASK)

where g is the grammar's distribution. The next state is g's successor when g(v | s) > 0 (whether v came from
the grammar or from the noise). Otherwise the automaton *resynchronises*: it moves to the successor of v in the
state that emits v grammatically and whose story memory agrees best with s's (ties: the most frequent such
state under the stationary distribution). So a slip costs its own improbable token and text that goes on
coherently after it scores normally again (a frozen state would make every later token noise, and exact
Gen PPL would only measure where the first slip happened). Because the state is a function of the prefix, all
probabilities are exact gathers (no forward algorithm, no belief over states): every sequence without PAD/MASK
has finite probability and `log_prob` is exact up to float64 rounding. Samples contain the noise too.

Streams: `[BOS] doc [EOS] [BOS] doc [EOS] ...`; scored sequences start at a document boundary (position 0 is
BOS, scored as log 1). After [EOS] the automaton is in EXPECT_BOS (state 0), where p(BOS) = 1 - noise + noise/V'.
Ids: PAD=0, BOS=1, EOS=2, MASK=3, then words (`vocab`).
"""

from __future__ import annotations

import hashlib
import math
from collections import deque

import numpy as np
import torch

from ..errors import UserError
from . import grammar_rules as R


def _compile(graph: dict, word_id: dict, V: int):
    """BFS over (node, live memory) -> grammar table g [S, V] and successor table [S, V] (-1: none)."""
    live = {n: set() for n in graph}
    changed = True
    while changed:  # backward liveness fixpoint: memory fields that a node's future may read
        changed = False
        for n, arcs in graph.items():
            new = set()
            for _, spec, nxt, writes in arcs:
                reads, wr = R.SLOTS.get(spec, (set(), set()))
                new |= reads | (live[nxt] - wr - set(writes))
            if new != live[n]:
                live[n], changed = new, True

    def flatten(node, p):  # epsilon closure: [(prob, spec, next, writes)]
        tot = sum(a[0] for a in graph[node])
        out = []
        for w, spec, nxt, writes in graph[node]:
            out += flatten(nxt, p * w / tot) if spec is None else [(p * w / tot, spec, nxt, writes)]
        return out

    groups = {}  # node -> [(next, writes, slot | None, token ids, probs)]: literal arcs grouped by target
    for n in graph:
        lit, slots = {}, []
        for p, spec, nxt, writes in flatten(n, 1.0):
            if spec.startswith("$"):
                slots.append((nxt, writes, spec, None, p))
            else:
                lit.setdefault((nxt, tuple(sorted(writes.items()))), []).append((word_id[spec], p))
        groups[n] = [(nxt, dict(w), None, np.array([t for t, _ in tp]), np.array([q for _, q in tp]))
                     for (nxt, w), tp in lit.items()] + slots

    fields = {n: sorted(live[n]) for n in graph}
    index, todo = {}, deque()
    hits = {}  # (node, group number) -> [(state, next state)] for literal groups
    rows, toks, probs, succ = [], [], [], []

    def state(node, mem):
        k = (node, tuple(mem[f] for f in fields[node]))
        i = index.get(k)
        if i is None:
            i = index[k] = len(index)
            todo.append((node, i, {f: mem[f] for f in fields[node]}))
        return i

    state("EXPECT_BOS", {}), state("DOC", {})
    while todo:
        node, s, mem = todo.popleft()
        for j, (nxt, writes, slot, tk, p) in enumerate(groups[node]):
            if slot is None:
                hits.setdefault((node, j), []).append((s, state(nxt, {**mem, **writes} if writes else mem)))
                continue
            for word, q, wr in R.expand_slot(slot, mem):
                rows.append([s]), toks.append([word_id[word]]), probs.append([p * q])
                succ.append([state(nxt, {**mem, **writes, **wr})])
    for (node, j), pairs in hits.items():  # vectorised fill of the literal groups
        _, _, _, tk, p = groups[node][j]
        sn = np.array(pairs)
        rows.append(np.repeat(sn[:, 0], len(tk))), succ.append(np.repeat(sn[:, 1], len(tk)))
        toks.append(np.tile(tk, len(sn))), probs.append(np.tile(p, len(sn)))
    S = len(index)
    flat = np.concatenate(rows).astype(np.int64) * V + np.concatenate(toks)
    if len(np.unique(flat)) != len(flat):
        raise AssertionError("story grammar is not deterministic: a node emits the same word twice")
    g, nxt = np.zeros(S * V), np.full(S * V, -1, dtype=np.int64)
    g[flat], nxt[flat] = np.concatenate(probs), np.concatenate(succ)
    names = ("name", "gender", "colour", "noun", "num")
    mem = np.array([[dict(zip(fields[k[0]], k[1])).get(f, -1) for f in names] for k in index], dtype=np.int64)
    return g.reshape(S, V), nxt.reshape(S, V), [k[0] for k in index], mem


def _stationary(P, start: int) -> np.ndarray:
    """Stationary distribution of the row-stochastic sparse `P` (one balance equation replaced by sum = 1)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    S = P.shape[0]
    A = (P.T - sp.identity(S)).tolil()
    A[start, :] = 1.0
    b = np.zeros(S)
    b[start] = 1.0
    return spla.spsolve(A.tocsc(), b)


def _resync(g: np.ndarray, succ: np.ndarray, mem: np.ndarray) -> np.ndarray:
    """`[S, V]` next state for every (state, token): g's successor where g(v|s) > 0, else the successor of v
    in the candidate state c (g(v|c) > 0) maximising (#memory fields equal to s's - #fields different; fields
    live in both), ties broken by pi(c) g(v|c) with pi the stationary distribution of the grammar chain.
    Tokens that no state emits (PAD, MASK) keep the state."""
    import scipy.sparse as sp

    S, V = g.shape
    gram = succ >= 0
    r, c = np.nonzero(gram)
    pi = _stationary(sp.csr_matrix((g[r, c], (r, succ[r, c])), shape=(S, S)), 0)
    assert mem.max() < 7, "memory values must fit the 3-bit code below"
    code = ((mem + 1) * 8 ** np.arange(mem.shape[1])).sum(1)  # one integer per memory row
    ucode, first, inv = np.unique(code, return_index=True, return_inverse=True)
    umem = mem[first]
    out = np.where(gram, succ, np.arange(S)[:, None])
    for v in range(V):
        cand = np.nonzero(gram[:, v])[0]
        if len(cand) == 0:
            continue
        w = np.maximum(pi[cand], 0.0) * g[cand, v]
        order = np.lexsort((-w, code[cand]))  # by memory row, the heaviest candidate first within each row
        cc, start = np.unique(code[cand][order], return_index=True)
        rep = cand[order][start]  # one representative (the heaviest) per distinct candidate memory row
        a, b = umem[:, None, :], mem[rep][None, :, :]
        both = (a >= 0) & (b >= 0)
        score = ((a == b) & both).sum(-1) - ((a != b) & both).sum(-1)  # [U, R] integers
        key = 2.0 * score + w[order][start] / max(w.max(), 1e-300)  # the tie-break lies in [0, 1]
        best = rep[key.argmax(1)][inv]  # [S]
        miss = ~gram[:, v]
        out[miss, v] = succ[best[miss], v]
    return out


class StoryGrammar:
    """Story corpus with exact probabilities (see the module docstring). `StoryGrammar(noise=0.002)`;
    randomness only from the `torch.Generator` passed to the sampling methods."""

    pad_id, bos_id, eos_id, mask_id = 0, 1, 2, 3

    def __init__(self, noise: float = 0.002):
        if not 0.0 <= noise < 1.0:
            raise UserError(f"StoryGrammar noise={noise!r} must be in [0, 1)")
        self.noise = float(noise)
        self.vocab = R.vocabulary()
        self.vocab_size = V = len(self.vocab)
        self.word_id = {w: i for i, w in enumerate(self.vocab)}
        g, succ, self.state_nodes, mem = _compile(R.build_graph(), self.word_id, V)
        self.num_states = S = g.shape[0]
        self.doc_state, self.expect_bos_state = 1, 0
        assert np.allclose(g.sum(1), 1.0), "grammar rows must sum to 1"
        gram = succ >= 0
        nxt = _resync(g, succ, mem)  # noise outside the grammar resynchronises the state (module docstring)
        # for sampling: each state's grammatical tokens first (by id) with their cdf; padding has cdf 1
        n_gram = gram.sum(1)
        gtok = np.argsort(~gram, axis=1, kind="stable")[:, : int(n_gram.max())]
        gcdf = np.cumsum(np.take_along_axis(g, gtok, 1), 1)
        gcdf[np.arange(gtok.shape[1])[None, :] >= n_gram[:, None] - 1] = 1.0
        self.num_noise_tokens = V - 2
        p = (1.0 - self.noise) * g + self.noise / self.num_noise_tokens
        p[:, [self.pad_id, self.mask_id]] = 0.0
        with np.errstate(divide="ignore"):
            self.emit_logp = torch.from_numpy(np.log(p))
        self.next_state = torch.from_numpy(nxt)
        self._gtok, self._gcdf = torch.from_numpy(gtok), torch.from_numpy(gcdf)
        self._noise_ids = torch.tensor([i for i in range(V) if i not in (self.pad_id, self.mask_id)])
        self.noise_logp = math.log(self.noise / self.num_noise_tokens) if self.noise > 0 else -math.inf
        self._fp = None

    # ---------------------------------------------------------------- sampling
    def _step(self, s: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One token per state `s: [n]` from p(. | s) = (1-noise) g + noise * uniform."""
        n = s.shape[0]
        is_noise = torch.rand(n, generator=gen, dtype=torch.float64) < self.noise
        noise_tok = self._noise_ids[torch.randint(len(self._noise_ids), (n,), generator=gen)]
        u = torch.rand(n, 1, generator=gen, dtype=torch.float64)
        j = (u >= self._gcdf[s]).sum(-1).clamp_max(self._gcdf.shape[1] - 1)
        gram_tok = self._gtok[s, j]
        return torch.where(is_noise, noise_tok, gram_tok)

    def sample(self, n: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """`[n, length]` long: rows start with BOS at a document boundary, documents packed, last one cut."""
        out = torch.empty(n, length, dtype=torch.long)
        out[:, 0] = self.bos_id
        s = torch.full((n,), self.doc_state, dtype=torch.long)
        for t in range(1, length):
            tok = self._step(s, generator)
            out[:, t] = tok
            s = self.next_state[s, tok]
        return out

    def sample_documents(self, n: int, generator: torch.Generator) -> list:
        """n documents `[BOS, ..., EOS]` (the EOS that ends the story; noise tokens are part of documents)."""
        s = torch.full((n,), self.doc_state, dtype=torch.long)
        cols, done, lens = [], torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.long)
        while not bool(done.all()):
            tok = self._step(s, generator)
            cols.append(tok)
            s = torch.where(done, s, self.next_state[s, tok])
            lens += (~done).long()
            done = done | (s == self.expect_bos_state)
        toks = torch.stack(cols, 1).tolist()
        return [[self.bos_id] + row[:k] for row, k in zip(toks, lens.tolist())]

    # ---------------------------------------------------------------- scoring
    def _states(self, seqs) -> tuple:
        """Validate `seqs: [B, L]` and return (seqs long, states [B, L]): state after reading x_<=i."""
        seqs = torch.as_tensor(seqs)
        if seqs.dim() != 2 or seqs.shape[1] < 1 or seqs.dtype.is_floating_point or seqs.dtype == torch.bool:
            raise UserError(f"seqs must be an integer tensor [B, L], L >= 1; got {tuple(seqs.shape)} {seqs.dtype}")
        seqs = seqs.to(torch.long)
        if seqs.numel() and (int(seqs.min()) < 0 or int(seqs.max()) >= self.vocab_size):
            raise UserError(f"token ids must lie in [0, {self.vocab_size}); got {int(seqs.min())}..{int(seqs.max())}")
        if bool((seqs[:, 0] != self.bos_id).any()):
            raise UserError("position 0 of every sequence must be BOS (id 1): sequences start at a document start")
        B, L = seqs.shape
        st = torch.empty(B, L, dtype=torch.long)
        s = torch.full((B,), self.doc_state, dtype=torch.long)
        st[:, 0] = s
        flat = self.next_state.reshape(-1)
        for i in range(1, L):
            s = flat[s * self.vocab_size + seqs[:, i]]
            st[:, i] = s
        return seqs, st

    def states(self, seqs) -> torch.Tensor:
        """`[B, L]` long: automaton state after reading x_<=i (PAD/MASK leave it unchanged)."""
        return self._states(seqs)[1]

    def token_log_probs(self, seqs) -> torch.Tensor:
        """`seqs: [B, L]` -> `[B, L]` float64 log p(x_i | x_<i); position 0 (BOS) is 0.0; -inf at PAD/MASK."""
        seqs, st = self._states(seqs)
        out = torch.zeros(seqs.shape, dtype=torch.float64)
        out[:, 1:] = self.emit_logp.reshape(-1)[st[:, :-1] * self.vocab_size + seqs[:, 1:]]
        return out

    def log_prob(self, seqs) -> torch.Tensor:
        """`seqs: [B, L]` -> `[B]` float64 exact log-probability given position 0 = BOS at a document start."""
        return self.token_log_probs(seqs).sum(-1)

    def conditional_logprobs(self, seqs) -> torch.Tensor:
        """`seqs: [B, L]` -> `[B, L, V]` float64: entry i is log p(x_{i+1} = . | x_<=i) (AR-shift convention)."""
        return self.emit_logp[self.states(seqs)]

    def next_token_logprobs(self, seqs) -> torch.Tensor:
        """`seqs: [B, n]` prefixes starting with BOS -> `[B, V]` float64 log p(next | prefix)."""
        return self.emit_logp[self.states(seqs)[:, -1]]

    # ---------------------------------------------------------------- entropy
    def entropy_rate(self, num_samples: int = 2000, length: int = 128, generator: torch.Generator | None = None):
        """Monte-Carlo nats/token: mean over sampled rows of -log p / (L-1), with a 95% normal CI."""
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        nll = -self.log_prob(self.sample(num_samples, length, gen)) / (length - 1)
        mean, se = float(nll.mean()), float(nll.std()) / math.sqrt(num_samples)
        return mean, mean - 1.96 * se, mean + 1.96 * se

    def transition_matrix(self):
        """scipy CSR `[S, S]`: P[s, s'] = sum of p(v | s) over tokens v leading from s to s'."""
        import scipy.sparse as sp

        S, V = self.emit_logp.shape
        p, to = np.exp(self.emit_logp.numpy()).ravel(), self.next_state.numpy().ravel()
        return sp.csr_matrix((p, (np.repeat(np.arange(S), V), to)), shape=(S, S))

    def state_entropies(self) -> np.ndarray:
        """`[S]` entropy (nats) of p(. | s)."""
        lp = self.emit_logp.numpy()
        return -(np.exp(lp) * np.where(np.isfinite(lp), lp, 0.0)).sum(1)

    def stationary_distribution(self) -> np.ndarray:
        """`[S]` stationary state distribution of the infinite document stream (exact sparse solve)."""
        return _stationary(self.transition_matrix(), 0)

    def expected_document_length(self) -> float:
        """Exact mean tokens per document cycle in the stream (BOS ... EOS, plus noise before the next BOS)."""
        pi = self.stationary_distribution()
        return 1.0 / (pi[self.expect_bos_state] * math.exp(self.emit_logp[self.expect_bos_state, self.bos_id]))

    def exact_entropy_rate(self, length: int | None = None) -> float:
        """Exact nats/token, noise included. `length=None`: the stationary rate of the infinite stream,
        sum_s pi(s) H(p(. | s)) (= expected entropy per document cycle / expected cycle length, by renewal).
        `length=L`: the exact expectation of the Monte-Carlo estimator `entropy_rate(length=L)`: the mean of
        H(p(. | state_t)) over t = 0..L-2 with state_0 the document start (state distribution propagated)."""
        h = self.state_entropies()
        if length is None:
            return float(self.stationary_distribution() @ h)
        PT, d, tot = self.transition_matrix().T.tocsr(), np.zeros(self.num_states), 0.0
        d[self.doc_state] = 1.0
        for _ in range(length - 1):
            tot, d = tot + d @ h, PT @ d
        return tot / (length - 1)

    # ---------------------------------------------------------------- text
    def decode(self, ids) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return " ".join(self.vocab[i] for i in ids if i >= len(R.SPECIALS))

    def encode(self, text: str) -> list:
        out = []
        for w in text.split():
            if w not in self.word_id:
                raise UserError(f"unknown word {w!r}: not in the StoryGrammar vocabulary")
            out.append(self.word_id[w])
        return out

    def fingerprint(self) -> str:
        if self._fp is None:
            h = hashlib.sha256("\n".join(self.vocab).encode())
            h.update(repr(self.noise).encode())
            h.update(self.next_state.numpy().tobytes())
            h.update(self.emit_logp.numpy().tobytes())
            self._fp = h.hexdigest()[:32]
        return self._fp
