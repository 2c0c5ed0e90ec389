"""Tests for the linear-chain CRF: brute-force enumeration, padding invariance, gradcheck, hard constraints."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.func import functional_call

from seqlab.models.crf import CRF, FORBIDDEN, lengths_to_mask, log_partition, path_score, viterbi
from seqlab.tasks.schemes import allowed_transitions, find_violation, labels_for


def random_crf(n_tags: int, seed: int, constraints=None) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(n_tags, constraints).double()
    with torch.no_grad():  # larger than the init's +-0.1, so transitions matter against the emissions
        for p in crf.parameters():
            p.normal_(0, 1)
    return crf


def brute_score(crf: CRF, em: torch.Tensor, path) -> float:
    """s(y) for one sentence em (T, C), written out term by term; -inf for a path the constraints forbid."""
    if not (crf.allowed_start[path[0]] and crf.allowed_end[path[-1]]
            and all(crf.allowed[a, b] for a, b in itertools.pairwise(path))):
        return -math.inf
    with torch.no_grad():
        s = crf.start[path[0]] + crf.end[path[-1]] + sum(em[t, y] for t, y in enumerate(path))
        return float(s + sum(crf.transitions[a, b] for a, b in itertools.pairwise(path)))


def brute_force(crf: CRF, em: torch.Tensor) -> tuple[float, list[int], float]:
    """(log Z, best path, best score) over all C^T paths of one sentence."""
    scored = [(brute_score(crf, em, p), list(p)) for p in itertools.product(range(crf.num_tags), repeat=len(em))]
    log_z = torch.logsumexp(torch.tensor([s for s, _ in scored], dtype=torch.float64), 0).item()
    best_score, best = max(scored)
    return log_z, best, best_score


def padded_batch(lengths, n_tags, seed):
    """Emissions (B, T, C) with junk (large values) in the padding, and its mask."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    em = torch.randn(len(lengths), int(lengths.max()), n_tags, generator=g, dtype=torch.float64) * 2
    mask = lengths_to_mask(lengths)
    em = torch.where(mask.unsqueeze(2), em, 50 * torch.randn(em.shape, generator=g, dtype=torch.float64))
    return em, mask


IOB2 = labels_for(["LOC", "PER"], "IOB2")  # 5 tags
BIOES = labels_for(["PER"], "BIOES")  # 5 tags
CASES = {"free-3": (3, None), "free-4": (4, None),
         "iob2": (len(IOB2), allowed_transitions(IOB2, "IOB2")),
         "bioes": (len(BIOES), allowed_transitions(BIOES, "BIOES"))}


@pytest.mark.parametrize("case", CASES)
def test_against_brute_force(case):
    n_tags, constraints = CASES[case]
    crf = random_crf(n_tags, seed=len(case), constraints=constraints)
    lengths = [1, 4, 2, 3] if n_tags <= 4 else [1, 3, 4, 2]
    em, mask = padded_batch(lengths, n_tags, seed=3)
    with torch.no_grad():
        paths = crf.decode(em, mask)
        _, start, trans, end = crf._scores(em, FORBIDDEN)
        log_z = log_partition(em, mask, start, trans, end)
    for b, n in enumerate(lengths):
        want_z, want_path, want_best = brute_force(crf, em[b, :n])
        assert log_z[b].item() == pytest.approx(want_z, abs=1e-9)
        assert paths[b, :n].tolist() == want_path
        assert (paths[b, n:] == -100).all()
        assert brute_score(crf, em[b, :n], want_path) == want_best


@pytest.mark.parametrize("case", CASES)
def test_nll_is_a_normalised_distribution(case):
    """exp(-NLL) over every path of a sentence sums to 1 (legal paths only, when constrained), and NLL of one path
    is log Z - s(path) by brute force."""
    n_tags, constraints = CASES[case]
    crf = random_crf(n_tags, seed=7, constraints=constraints)
    em, mask = padded_batch([3], n_tags, seed=4)
    paths = torch.tensor(list(itertools.product(range(n_tags), repeat=3)))
    with torch.no_grad():
        nll = crf(em.expand(len(paths), -1, -1), paths, mask.expand(len(paths), -1), reduction="none")
    legal = torch.tensor([brute_score(crf, em[0], p.tolist()) > -math.inf for p in paths])
    assert torch.exp(-nll[legal]).sum().item() == pytest.approx(1.0, abs=1e-9)
    assert torch.exp(-nll[~legal]).sum().item() == 0.0
    assert legal.all() == (constraints is None)
    log_z = brute_force(crf, em[0])[0]
    k = int(legal.nonzero()[-1])
    assert nll[k].item() == pytest.approx(log_z - brute_score(crf, em[0], paths[k].tolist()), abs=1e-9)


@pytest.mark.parametrize("constrained", [False, True], ids=["free", "bioes"])
def test_padding_invariance(constrained):
    """A padded batch gives each sequence exactly its own result, whatever the padding holds."""
    labels = labels_for(["LOC", "ORG", "PER"], "BIOES")
    crf = random_crf(len(labels), seed=1, constraints=allowed_transitions(labels, "BIOES") if constrained else None)
    lengths = [7, 1, 12, 5, 12, 2]
    em, mask = padded_batch(lengths, len(labels), seed=5)
    tags = torch.randint(0, len(labels), mask.shape, generator=torch.Generator().manual_seed(0))
    tags = tags.masked_fill(~mask, -100)
    nll = crf(em, tags, mask, reduction="none")
    paths = crf.decode(em, mask)
    for b, n in enumerate(lengths):
        one = crf(em[b:b + 1, :n], tags[b:b + 1, :n], mask[b:b + 1, :n], reduction="none")
        assert nll[b].item() == pytest.approx(one.item(), abs=1e-10)
        assert torch.equal(paths[b, :n], crf.decode(em[b:b + 1, :n], mask[b:b + 1, :n])[0])


@pytest.mark.parametrize("constrained", [False, True], ids=["free", "iob2"])
def test_gradcheck_float64(constrained):
    crf = random_crf(len(IOB2), seed=2, constraints=allowed_transitions(IOB2, "IOB2") if constrained else None)
    em, mask = padded_batch([4, 2, 3], len(IOB2), seed=6)
    tags = torch.tensor([[1, 2, 0, 3], [3, 4, -100, -100], [0, 1, 2, -100]])  # legal IOB2 paths
    names = ("transitions", "start", "end")

    def nll(em, transitions, start, end):
        params = dict(zip(names, (transitions, start, end)))
        return functional_call(crf, params, (em, tags, mask), {"reduction": "sum"})

    inputs = tuple(x.detach().clone().requires_grad_() for x in (em, crf.transitions, crf.start, crf.end))
    assert torch.autograd.gradcheck(nll, inputs)
    loss = nll(*inputs)
    loss.backward()
    assert all(torch.isfinite(x.grad).all() for x in inputs)
    if constrained:  # forbidden entries get no gradient: they are fixed at FORBIDDEN
        assert (inputs[1].grad[~crf.allowed] == 0).all() and (inputs[2].grad[~crf.allowed_start] == 0).all()


def test_constrained_decoding_never_emits_a_forbidden_transition():
    for scheme in ("IOB1", "IOB2", "BIOES"):
        labels = labels_for(["LOC", "ORG", "PER"], scheme)
        allowed = allowed_transitions(labels, scheme)
        crf = CRF(len(labels), allowed)
        with torch.no_grad():  # learned scores that love forbidden moves, and wild emissions
            crf.transitions.copy_(torch.where(allowed.pairs, -5.0, 5.0))
            crf.start.copy_(torch.where(allowed.start, -5.0, 5.0))
            crf.end.copy_(torch.where(allowed.end, -5.0, 5.0))
        em = torch.randn(64, 20, len(labels), generator=torch.Generator().manual_seed(0)) * 30
        lengths = torch.randint(1, 21, (64,), generator=torch.Generator().manual_seed(1))
        paths = crf.decode(em, lengths_to_mask(lengths, 20))
        for path, n in zip(paths.tolist(), lengths.tolist()):
            assert find_violation([labels[i] for i in path[:n]], scheme) is None
        free = CRF(len(labels))  # the same scores without constraints do produce forbidden paths
        free.load_state_dict({k: v for k, v in crf.state_dict().items() if not k.startswith("allowed")}, strict=False)
        bad = free.decode(em, lengths_to_mask(lengths, 20))
        assert any(find_violation([labels[i] for i in p[:n]], scheme) for p, n in zip(bad.tolist(), lengths.tolist()))


def test_viterbi_score_is_the_path_score():
    crf = random_crf(6, seed=3)
    em, mask = padded_batch([5, 9, 1], 6, seed=7)
    with torch.no_grad():
        _, start, trans, end = crf._scores(em, float("-inf"))
        paths, best = viterbi(em, mask, start, trans, end)
        assert torch.allclose(best, path_score(em, paths, mask, start, trans, end), atol=1e-12)


def test_reductions_dtypes_and_errors():
    crf = CRF(4)
    em = torch.randn(3, 5, 4)
    mask = lengths_to_mask(torch.tensor([5, 2, 3]))
    tags = torch.randint(0, 4, (3, 5)).masked_fill(~mask, -100)
    per = crf(em, tags, mask, reduction="none")
    assert per.shape == (3,) and (per > 0).all()
    assert crf(em, tags, mask, reduction="sum").item() == pytest.approx(per.sum().item(), rel=1e-6)
    assert crf(em, tags, mask, reduction="mean").item() == pytest.approx(per.mean().item(), rel=1e-6)
    assert crf(em, tags, mask).item() == pytest.approx(per.sum().item() / 10, rel=1e-6)  # token_mean: 10 tokens
    assert crf(em, tags, mask.long()).item() == crf(em, tags, mask).item()  # a 0/1 mask works too
    assert torch.equal(crf.decode(em, mask.long()), crf.decode(em, mask))
    with pytest.raises(ValueError, match="reduction must be"):
        crf(em, tags, mask, reduction="avg")
    half = em.to(torch.bfloat16)  # computed in float32, on the bf16 values
    assert crf(half, tags, mask).dtype == torch.float32
    assert crf(half, tags, mask).item() == pytest.approx(crf(half.float(), tags, mask).item(), rel=1e-6)
    assert torch.equal(crf.decode(half, mask), crf.decode(half.float(), mask))
    with pytest.raises(ValueError, match=r"constraints must have shapes \(4, 4\), \(4,\), \(4,\)"):
        CRF(4, (torch.ones(3, 3), torch.ones(3), torch.ones(3)))


def test_constraints_are_saved_in_the_state_dict():
    allowed = allowed_transitions(IOB2, "IOB2")
    crf = CRF(len(IOB2), allowed)
    other = CRF(len(IOB2))
    other.load_state_dict(crf.state_dict())
    assert torch.equal(other.allowed, allowed.pairs) and torch.equal(other.allowed_start, allowed.start)
    assert "constrained=True" in repr(other) and "constrained=False" in repr(CRF(3))


def test_learns_transitions():
    """With uninformative (zero) emissions, a trained CRF's Viterbi path is the tag pattern of its training data."""
    torch.manual_seed(0)
    crf = CRF(3)
    pattern = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])  # starts with 0, 0 -> 1 -> 2 -> 0, ends with 1
    tags = pattern.expand(16, -1)
    em = torch.zeros(16, 8, 3)
    mask = torch.ones(16, 8, dtype=torch.bool)
    opt = torch.optim.Adam(crf.parameters(), lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        crf(em, tags, mask).backward()
        opt.step()
    assert crf.decode(em[:1], mask[:1])[0].tolist() == pattern.tolist()
